"""Data layer: readers for CAMELS-US, Caravan and spotpy's example sites, the download of
CAMELS-US, batching for jit-compiled training steps, and synthetic twins.

All readers return ``xarray.Dataset`` objects with dynamic variables on ``(basin, time)``,
static attributes on ``(basin,)`` and units in each variable's ``attrs``.
"""

from ._common import SENTINELS, DataFileError, with_day_length
from .batching import (
    CAMELS_PERIODS,
    BasinData,
    Batch,
    NormStats,
    fit_normalization,
    full_period_batch,
    make_basin_data,
    make_sampler,
    resolve_period,
    sample_batch,
)
from .camels import (
    FORCING_PRODUCTS,
    cfs_to_mm_per_day,
    load_camels_us,
    read_camels_attributes,
    read_forcing_file,
    read_streamflow_file,
)
from .caravan import load_caravan, read_caravan_attributes, read_caravan_timeseries
from .download import ChecksumError, download_camels_us, download_file
from .folder import convert_units, load_folder
from .sites import load_example
from .validation import DEFAULT_POLICIES, VARIABLES, DataValidationError, Policy, ValidationReport, validate
from .synthetic import (
    TEXTURES,
    TWIN_DEPTHS_CM,
    TWIN_THICKNESS_CM,
    degree_day_snow,
    fulda_twin,
    make_synthetic_twin,
    richards_twin,
    true_parameters,
)

__all__ = [
    "SENTINELS",
    "VARIABLES",
    "DEFAULT_POLICIES",
    "Policy",
    "DataValidationError",
    "ValidationReport",
    "validate",
    "load_folder",
    "convert_units",
    "DataFileError",
    "with_day_length",
    "CAMELS_PERIODS",
    "BasinData",
    "Batch",
    "NormStats",
    "fit_normalization",
    "full_period_batch",
    "make_basin_data",
    "make_sampler",
    "resolve_period",
    "sample_batch",
    "FORCING_PRODUCTS",
    "cfs_to_mm_per_day",
    "load_camels_us",
    "read_camels_attributes",
    "read_forcing_file",
    "read_streamflow_file",
    "load_caravan",
    "read_caravan_attributes",
    "read_caravan_timeseries",
    "ChecksumError",
    "download_camels_us",
    "download_file",
    "load_example",
    "fulda_twin",
    "make_synthetic_twin",
    "true_parameters",
    "richards_twin",
    "degree_day_snow",
    "TEXTURES",
    "TWIN_THICKNESS_CM",
    "TWIN_DEPTHS_CM",
]
