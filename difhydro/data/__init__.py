"""Data layer: readers for CAMELS-US, Caravan and spotpy's example sites, the download of
CAMELS-US, batching for jit-compiled training steps, and synthetic twins.

All readers return ``xarray.Dataset`` objects with dynamic variables on ``(basin, time)``,
static attributes on ``(basin,)`` and units in each variable's ``attrs``.

Names are imported on first use (PEP 562): ``difhydro.data.periods`` and
``difhydro.data.policies`` (what the ``difhydro`` command checks a config with) import
neither NumPy nor xarray.
"""

from .._lazy import lazy_exports

_WHERE = {  # name -> module of this package
    **dict.fromkeys(["SENTINELS", "DataFileError", "with_day_length"], "_common"),
    **dict.fromkeys(["CAMELS_PERIODS", "resolve_period"], "periods"),
    **dict.fromkeys(["BasinData", "Batch", "NormStats", "fit_normalization", "full_period_batch", "make_basin_data",
                     "make_sampler", "sample_batch"], "batching"),
    **dict.fromkeys(["FORCING_PRODUCTS", "cfs_to_mm_per_day", "load_camels_us", "read_camels_attributes",
                     "read_forcing_file", "read_streamflow_file"], "camels"),
    **dict.fromkeys(["load_caravan", "read_caravan_attributes", "read_caravan_timeseries"], "caravan"),
    **dict.fromkeys(["ChecksumError", "download_camels_us", "download_file"], "download"),
    **dict.fromkeys(["convert_units", "load_folder"], "folder"),
    **dict.fromkeys(["load_example"], "sites"),
    **dict.fromkeys(["DEFAULT_POLICIES", "VARIABLES", "DataValidationError", "Policy", "ValidationReport", "validate"],
                    "validation"),
    **dict.fromkeys(["TEXTURES", "TWIN_DEPTHS_CM", "TWIN_THICKNESS_CM", "degree_day_snow", "fulda_twin",
                     "make_synthetic_twin", "richards_twin", "true_parameters"], "synthetic"),
}

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


__getattr__, __dir__ = lazy_exports(__name__, _WHERE, __all__)
