"""From a config to validated data: source, format, PET, inputs, attributes, basins, periods.

:func:`prepare_data` does every step that can fail on the data before a run directory is
created: it finds the data (``data.dir`` or ``--data-dir``, ``$DIFHYDRO_DATA_DIR``, else the
synthetic twin; the package does not look for ``../shared/data`` itself, the main job
script ``benchmarks/camels_regional.py`` may), reads it with the reader of its format,
runs the validation pass of :mod:`difhydro.data.validation` (policies from the config),
adds the PET the process models read, chooses the network inputs and attributes, the
periods and the eligible basins, and records all of it as notes for ``summary.md``.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..data import (
    ValidationReport,
    fulda_twin,
    load_camels_us,
    load_caravan,
    load_folder,
)
from ..physics import ExpHydro, hamon_pet, hargreaves_pet, oudin_pet
from .config import Config, ConfigError, check_validation_period

__all__ = [
    "ExperimentData",
    "prepare_data",
    "resolve_source",
    "detect_format",
    "add_pet",
    "with_pet",
    "pet_method",
    "PET_VARIANT",
    "read_basin_file",
    "data_files",
    "DataError",
    "CAMELS_ATTRIBUTES",
    "CARAVAN_ATTRIBUTES",
    "DEFAULT_PERIODS",
    "PHYSICS_FORCING",
]

# Kratzert et al. (2019): the 27 CAMELS attributes of the regional LSTM
CAMELS_ATTRIBUTES = (
    "p_mean", "pet_mean", "aridity", "p_seasonality", "frac_snow", "high_prec_freq", "high_prec_dur",
    "low_prec_freq", "low_prec_dur", "elev_mean", "slope_mean", "area_gages2", "frac_forest", "lai_max",
    "lai_diff", "gvf_max", "gvf_diff", "soil_depth_pelletier", "soil_depth_statsgo", "soil_porosity",
    "soil_conductivity", "max_water_content", "sand_frac", "silt_frac", "clay_frac",
    "carbonate_rocks_frac", "geol_permeability",
)
# the closest Caravan (climate indices + HydroATLAS) equivalents
CARAVAN_ATTRIBUTES = (
    "p_mean", "pet_mean", "aridity", "frac_snow", "moisture_index", "seasonality", "high_prec_freq",
    "high_prec_dur", "low_prec_freq", "low_prec_dur", "ele_mt_sav", "slp_dg_sav", "area", "for_pc_sse",
    "cly_pc_sav", "snd_pc_sav", "slt_pc_sav", "soc_th_sav", "kar_pc_sse", "gwt_cm_sav",
)
NETWORK_INPUTS = {
    "camels_us": ("precipitation", "tmax", "tmin", "temperature", "srad", "vp", "pet", "day_length"),
    # the three columns of the Caravan files, as neuralhydrology reads them
    "caravan": ("precipitation", "temperature", "pet_era5"),
    "twin": ("precipitation", "temperature", "day_length", "pet"),
    "folder": ("precipitation", "tmax", "tmin", "temperature", "srad", "vp", "pet", "day_length"),
}
#: what the process models read (every model takes the subset it needs)
PHYSICS_FORCING = ("precipitation", "temperature", "day_length", "pet")
DEFAULT_PERIODS = {
    # CAMELS standard split (Kratzert et al. 2019): train 1999-2008, test 1989-1999
    "camels_us": {"train": ("1999-10-01", "2008-09-30"), "test": ("1989-10-01", "1999-09-30")},
    "caravan": {"train": ("1999-10-01", "2008-09-30"), "test": ("1989-10-01", "1999-09-30")},
    # the Fulda forcing of the twin covers 1979-1988
    "twin": {"train": ("1979-01-01", "1984-12-31"), "test": ("1985-01-01", "1988-12-31")},
}
DEFAULT_PET = {"caravan": "oudin", "camels_us": "hargreaves", "twin": "hamon", "folder": "data"}


class DataError(ValueError):
    """The data cannot serve the configured experiment (one line saying why)."""


@dataclasses.dataclass
class ExperimentData:
    """Everything a run reads from the data, and how it was chosen."""

    ds: xr.Dataset
    kind: str
    root: Path | None
    periods: dict[str, tuple[str, str]]
    basins: list[str]
    excluded: dict[str, str]
    inputs: list[str]
    attributes: list[str]
    pet: str
    notes: list[str]
    report: ValidationReport | None

    def provenance(self) -> dict:
        return {"format": self.kind, "root": None if self.root is None else str(self.root),
                "basins": self.basins, "excluded": self.excluded, "periods": self.periods,
                "inputs": self.inputs, "attributes": self.attributes, "pet": self.pet, "notes": self.notes}


def resolve_source(cfg: Config, data_dir: str | None = None) -> tuple[str, Path | None, str]:
    """``(format, folder, note)``: where the data comes from (``data_dir`` overrides the config)."""
    root = data_dir or cfg.data.dir or os.environ.get("DIFHYDRO_DATA_DIR")
    how = "--data-dir" if data_dir else "data.dir / --data-dir" if cfg.data.dir else "$DIFHYDRO_DATA_DIR" if root else ""
    if cfg.data.format == "twin" or not root:  # the package never looks for data beside the checkout itself
        return "twin", None, "no data configured (--data-dir, data.dir or $DIFHYDRO_DATA_DIR): the SYNTHETIC TWIN"
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataError(f"data folder {path} (from {how}) does not exist")
    kind, folder = detect_format(path, cfg.data.format)
    return kind, folder, f"{kind} data at {folder} (from {how})"


def detect_format(root: Path, wanted: str = "auto") -> tuple[str, Path]:
    """``(format, folder)`` from the folder layout (also one level down)."""
    layouts = {
        "camels_us": lambda p: (p / "basin_mean_forcing").is_dir(),
        "caravan": lambda p: (p / "timeseries").is_dir() and (p / "attributes").is_dir(),
        "folder": lambda p: (p / "timeseries").is_dir() and any(p.glob("attributes*.csv")),
    }
    order = list(layouts) if wanted == "auto" else [wanted]
    for kind in order:
        if layouts[kind](root):
            return kind, root
    for sub in ("camels_us", "basin_dataset_public_v1p2", "camels_caravan", "Caravan"):
        if (root / sub).is_dir():
            for kind in order:
                if layouts[kind](root / sub):
                    return kind, root / sub
    expected = {"auto": "a CAMELS-US folder (basin_mean_forcing/, usgs_streamflow/, camels_attributes_v2.0/), a "
                        "Caravan folder (timeseries/, attributes/) or a generic folder (timeseries/, attributes.csv)",
                "camels_us": "a CAMELS-US folder (basin_mean_forcing/, usgs_streamflow/, camels_attributes_v2.0/)",
                "caravan": "a Caravan folder (timeseries/, attributes/)",
                "folder": "a generic folder (timeseries/<basin>.csv|.nc, attributes.csv)"}
    raise DataError(f"{root} is not {expected[wanted]}, nor holds one one level down")


def data_files(root: Path, basins: Sequence[str]) -> list[Path]:
    """The files below ``root`` that a run of ``basins`` reads (for the checksums of
    ``provenance.json``): in the folders of per-basin files (names holding a basin id of
    ``basins``, and their sibling folders) only the files of ``basins``; every file of the
    other folders (attribute tables, documentation). Hidden files are left out."""
    ids = sorted({str(b) for b in basins}, key=len, reverse=True)
    named = re.compile("(?<![A-Za-z0-9])(" + "|".join(map(re.escape, ids)) + ")(?![A-Za-z0-9])") if ids else None
    by_dir: dict[Path, list[Path]] = {}
    for path in sorted(Path(root).rglob("*")):
        if path.is_file() and not any(p.startswith(".") for p in path.relative_to(root).parts):
            by_dir.setdefault(path.parent, []).append(path)
    own = {d: [p for p in paths if named is not None and named.search(p.name)] for d, paths in by_dir.items()}
    per_basin = {d for d, paths in own.items() if paths}
    per_basin |= {d for d in by_dir if any(o.parent == d.parent for o in per_basin)}
    return [p for d, paths in by_dir.items() for p in (own[d] if d in per_basin else paths)]


def read_basin_file(path: str | Path) -> list[str]:
    """Basin ids, one per line (blank lines and ``#`` comments ignored)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"basin file {path} not found")
    basins = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    basins = [b for b in basins if b]
    if not basins:
        raise DataError(f"basin file {path} lists no basin")
    return basins


def _latitude(ds: xr.Dataset) -> xr.DataArray:
    for name in ("gauge_lat", "forcing_latitude", "latitude", "lat"):
        if name in ds and ds[name].dims == ("basin",):
            return ds[name]
    raise DataError("PET from radiation needs each basin's latitude (an attribute gauge_lat, latitude or lat)")


#: the variable holding PET by another method than ``data.pet``, for the models that read it
PET_VARIANT = "pet_by_{}"


def pet_method(cfg: Config, kind: str, model: str | None = None) -> str:
    """The PET method of ``data.pet``, or the one model ``model`` reads (its own
    ``models.<model>.pet``, else ``data.pet``), ``auto`` resolved by the data's format ``kind``."""
    method = (cfg.models.get(model) or {}).get("pet", cfg.data.pet) if model else cfg.data.pet
    return DEFAULT_PET[kind] if method == "auto" else method


def with_pet(ds: xr.Dataset, method: str | None) -> xr.Dataset:
    """``ds`` as a model that reads PET by ``method`` sees it: ``pet`` is the variant
    :data:`PET_VARIANT` computed by :func:`prepare_data` when ``method`` is not the data's
    ``data.pet`` (``ds.attrs["pet_method"]``); ``None`` (a model saved before models had
    their own PET) keeps ``pet``."""
    if method is None or method == ds.attrs.get("pet_method", method):
        return ds
    name = PET_VARIANT.format(method)
    if name not in ds:
        raise DataError(f"the model reads pet by {method!r} (models.<name>.pet) but the data has only "
                        f"{ds.attrs.get('pet_method')!r} PET; prepare the data with this run's config")
    return ds.assign(pet=ds[name])


def add_pet(ds: xr.Dataset, method: str) -> tuple[xr.Dataset, str]:
    """Set ``pet`` (mm d-1) by ``method``; a data set's own ``pet`` is kept as ``pet_data``
    (Caravan: ``pet_era5``). Returns the data set and a note naming the PET."""
    kind_name = "pet_era5" if "pet" in ds and "ERA5" in str(ds["pet"].attrs.get("long_name", "")) else "pet_data"
    if method == "data":
        if "pet" not in ds:
            raise DataError("data.pet = 'data' but the data set has no pet variable")
        negative = ds["pet"].values < 0
        if negative.any():  # the buckets would read them as water added (ERA5-Land: condensation days)
            basins = ds["basin"].values[negative.any(axis=1)]
            raise DataError(f"data.pet = 'data': pet has {int(negative.sum())} negative value(s) (min "
                            f"{float(np.nanmin(ds['pet'].values)):g} mm d-1) in {len(basins)} basin(s) "
                            f"(first: {', '.join(map(str, basins[:3]))}), which the process models would read as "
                            "water added; clip them with data.policies: {pet: {clip: [0, null]}} (reported)")
        return ds, "pet: the data set's own pet"
    if "pet" in ds:
        ds = ds.rename(pet=kind_name)
    doy = ds["time"].dt.dayofyear.values[None, :].astype(np.float32)
    if method == "oudin":
        pet = oudin_pet(ds["temperature"].values, _latitude(ds).values[:, None], doy)
        note = "pet: Oudin et al. (2005) from daily mean temperature, gauge latitude and day of year"
    elif method == "hamon":
        pet = hamon_pet(ds["temperature"].values, ds["day_length"].values)
        note = "pet: Hamon from daily mean temperature and day length"
    else:  # hargreaves, Hamon where tmax == tmin (CAMELS NLDAS)
        if "tmax" not in ds or "tmin" not in ds:
            raise DataError("data.pet = 'hargreaves' needs tmax and tmin")
        harg = np.asarray(hargreaves_pet(ds["tmax"].values, ds["tmin"].values, _latitude(ds).values[:, None], doy))
        flat = (np.abs(ds["tmax"] - ds["tmin"]) < 1e-6).mean("time").values > 0.5
        pet = np.where(flat[:, None], np.asarray(hamon_pet(ds["temperature"].values, ds["day_length"].values)), harg)
        note = "pet: Hargreaves from tmax/tmin" + (f" (Hamon for {int(flat.sum())} basins with tmax == tmin)" if flat.any() else "")
    ds = ds.assign(pet=(("basin", "time"), np.asarray(pet, np.float32)))
    ds["pet"].attrs.update(units="mm d-1", long_name="potential evapotranspiration", comment=note)
    return ds, note


def _load(cfg: Config, kind: str, folder: Path | None, basins, notes: list[str], attributes,
          need_observations: bool = True) -> xr.Dataset:
    common = dict(validate=True, policies=cfg.data.policies or None, required_attributes=attributes or None)
    if kind == "twin":
        n = basins if isinstance(basins, int) else cfg.data.twin_basins
        notes.append(f"data: SYNTHETIC TWIN of EXP-HYDRO on the real Fulda forcing (spotpy), {n} basins, 10 % noise")
        return fulda_twin(ExpHydro(), n_basins=max(n, 2 * cfg.folds), seed=cfg.seeds[0], noise=0.1)
    ids = basins if isinstance(basins, list) else None
    if kind == "camels_us":
        forcing = cfg.data.forcing
        if forcing == "auto":
            counts = {p: len(list((folder / "basin_mean_forcing" / p).rglob("*_forcing_leap.txt")))
                      for p in ("daymet", "nldas", "maurer", "maurer_extended") if (folder / "basin_mean_forcing" / p).is_dir()}
            if not counts:
                raise DataError(f"{folder / 'basin_mean_forcing'} holds no forcing product")
            forcing = max(counts, key=counts.get)
            notes.append(f"forcing: {forcing} (the product with the most basins: {counts})")
        notes.insert(0, f"data: CAMELS-US at {folder} ({forcing} forcing)")
        return load_camels_us(folder, basins=ids, forcing=forcing, missing_streamflow="nan", **common)
    if kind == "caravan":
        notes.insert(0, f"data: Caravan at {folder} (ERA5-Land forcing)")
        # derived inputs (day length, PET) are computed, every other input is a file column
        columns = [] if cfg.data.inputs == "auto" else [n for n in cfg.data.inputs
                                                         if n not in ("day_length", "pet", "pet_era5")]
        return load_caravan(folder, basins=ids, required_columns=columns, **common)
    notes.insert(0, f"data: generic folder at {folder}")
    if not cfg.data.folder.get("variables"):
        raise ConfigError("data.folder.variables: a generic folder needs the mapping {variable: column} (see README)")
    options = dict(cfg.data.folder)
    if not need_observations and "streamflow" in options["variables"]:
        # a prediction reads no observations: files without the streamflow column are accepted
        options["variables"] = {k: v for k, v in options["variables"].items() if k != "streamflow"}
        options["units"] = {k: v for k, v in dict(options.get("units", {})).items() if k != "streamflow"}
        notes.append("streamflow: not read (a prediction needs no observations)")
    return load_folder(folder, basins=ids, **options, **common)


def _clip_period(ds: xr.Dataset, period: tuple[str, str], name: str, notes: list[str] | None = None) -> tuple[str, str]:
    """Shrink ``period`` to the days on which at least half of the basins have forcing; a
    cut is added to ``notes`` (summary.md), a period without such days is an error."""
    have = np.isfinite(ds["precipitation"].sel(time=slice(*period))).mean("basin")
    days = have["time"].values[have.values >= 0.5]
    covers = f"{str(ds.time.values[0])[:10]}:{str(ds.time.values[-1])[:10]}"
    if days.size == 0:
        raise DataError(f"periods.{name}: no forcing in {period[0]}:{period[1]} for half of the basins "
                        f"(the data covers {covers})")
    cut = str(pd.Timestamp(days[0]).date()), str(pd.Timestamp(days[-1]).date())
    if cut != tuple(period) and notes is not None:
        notes.append(f"CUT: periods.{name} {period[0]}:{period[1]} was cut to {cut[0]}:{cut[1]}, the days on which "
                     f"half of the basins have forcing (the data cover {covers})")
    return cut


def _eligible(ds: xr.Dataset, periods: dict, limit: int | None, min_days: int) -> tuple[list[str], dict[str, str]]:
    """Basins with complete physics forcing in every period and enough streamflow in each."""
    keep, excluded = [], {}
    for b in ds["basin"].values:
        reason = None
        for name, period in periods.items():
            sub = ds.sel(basin=b, time=slice(*period))
            cover = min(float(np.isfinite(sub[v]).mean()) for v in PHYSICS_FORCING if v in sub)
            if cover < 0.99:
                reason = f"forcing covers {100 * cover:.0f} % of the {name} period {period[0]}:{period[1]}"
                break
            if min_days and int(np.isfinite(sub["streamflow"]).sum()) < min_days:
                reason = f"fewer than {min_days} days of streamflow in the {name} period {period[0]}:{period[1]}"
                break
        (excluded.__setitem__(str(b), reason) if reason else keep.append(str(b)))
    if limit:
        for b in keep[limit:]:
            excluded[b] = f"beyond data.basins = {limit}"
        keep = keep[:limit]
    return keep, excluded


def _choose(kind: str, wanted, auto: Sequence[str], ds: xr.Dataset, what: str,
            notes: list[str] | None = None) -> list[str]:
    """The names of ``wanted`` (or, for ``"auto"``, of ``auto``) present in ``ds``: an explicit
    name that is missing is an error, an automatic one is dropped with a note."""
    names = list(auto) if wanted == "auto" else list(wanted)
    missing = [n for n in names if n not in ds]
    if missing and wanted == "auto" and notes is not None:
        notes.append(f"NOTE: data.{what} auto: {missing} are not in the {kind} data and are not used")
    if missing and wanted != "auto":
        raise DataError(f"data.{what}: {missing} are not in the {kind} data; it has {sorted(ds.data_vars)}")
    if missing and what == "attributes":
        raise DataError(f"data.attributes: the {kind} data lacks the attributes {missing} (an attribute table "
                        f"missing?); list the ones to use in data.attributes")
    return [n for n in names if n in ds]


def _network_inputs(kind: str, wanted, ds: xr.Dataset, basins: list, period, notes: list[str]) -> list[str]:
    """The network's dynamic inputs: every name must be finite over the basins and first
    period; an automatic one that is not is dropped with a note, an explicit one is an error."""
    names = _choose(kind, wanted, NETWORK_INPUTS.get(kind, ()), ds, "inputs", notes)
    gaps = [v for v in names if not np.isfinite(ds[v].sel(basin=basins, time=slice(*period))).all()]
    if gaps and wanted != "auto":
        raise DataError(f"data.inputs: {gaps} have missing values in {period[0]}..{period[1]} of the used basins; "
                        f"choose a policy for them (data.policies) or leave them out")
    if gaps:
        notes.append(f"NOTE: data.inputs auto: {gaps} have missing values in {period[0]}..{period[1]} and are not used")
    return [v for v in names if v not in gaps]


def prepare_data(cfg: Config, data_dir: str | None = None, basin_file: str | None = None,
                 need_observations: bool = True, periods: dict | None = None) -> ExperimentData:
    """Load, validate and select the data of an experiment (see the module docstring).

    ``periods`` replaces the config's (``evaluate`` / ``predict`` pass only ``test``);
    ``need_observations=False`` keeps basins without streamflow (prediction).

    Raises:
        DataError, ConfigError, DataFileError, DataValidationError: with one line saying
            what is wrong with which file, variable or key.
    """
    notes: list[str] = []
    kind, folder, source_note = resolve_source(cfg, data_dir)
    basins = read_basin_file(basin_file) if basin_file else cfg.data.basins
    if isinstance(basins, str) and basins != "all":
        basins = read_basin_file(basins)
    auto_attrs = {"camels_us": CAMELS_ATTRIBUTES, "caravan": CARAVAN_ATTRIBUTES}.get(kind, ())
    wanted_attrs = list(auto_attrs) if cfg.data.attributes == "auto" else list(cfg.data.attributes)
    ds = _load(cfg, kind, folder, basins, notes, wanted_attrs if kind in ("camels_us", "caravan") else None,
               need_observations)
    if isinstance(basins, list):
        unknown = [b for b in basins if b not in set(ds["basin"].values.astype(str))]
        if unknown:
            raise DataError(f"basins {unknown[:5]} are not in the {kind} data")
    pet = pet_method(cfg, kind)
    raw = ds
    ds, pet_note = add_pet(raw, pet)
    notes.append(pet_note)
    ds = ds.assign_attrs(pet_method=pet)  # a new object: add_pet may return raw itself
    own = {}  # models that read another PET than data.pet: each method computed once, as its own variable
    for name in cfg.models or {}:
        method = pet_method(cfg, kind, name)
        if method != pet:
            own.setdefault(method, []).append(name)
    for method, names in own.items():
        variant, note = add_pet(raw, method)
        ds = ds.assign({PET_VARIANT.format(method): variant["pet"]})
        notes.append(f"{note} (read by {', '.join(names)}: models.<name>.pet)")
    if kind == "twin":
        attributes = [v for v in ds.data_vars if v.startswith("attribute_")]
    elif kind == "folder" and cfg.data.attributes == "auto":
        attributes = [v for v in ds.data_vars if ds[v].dims == ("basin",) and np.issubdtype(ds[v].dtype, np.number)
                      and v not in ("gauge_lat", "gauge_lon", "area")]
    else:
        attributes = _choose(kind, cfg.data.attributes, auto_attrs, ds, "attributes")
    if periods is None:
        periods = dict(DEFAULT_PERIODS.get(kind, {}))
        periods.update(cfg.periods)
        missing = [p for p in ("train", "test") if p not in periods]
        if missing:
            raise ConfigError(f"periods.{missing[0]}: the {kind} format has no default; give it as START:END")
    check_validation_period(periods)
    periods = {name: _clip_period(ds, p, name, notes) for name, p in periods.items()}
    for name, p in periods.items():
        notes.append(f"{name} period: {p[0]} .. {p[1]}")
    (t0, t1), (s0, s1) = (tuple(pd.Timestamp(d) for d in periods.get(k, periods["test"])) for k in ("train", "test"))
    if "train" in periods and s0 <= t1 and t0 <= s1:
        notes.append(f"WARNING: the test period {periods['test'][0]}:{periods['test'][1]} overlaps the training period "
                     f"{periods['train'][0]}:{periods['train'][1]}; gauged scores are then not out of sample")
    limit = basins if isinstance(basins, int) and kind != "twin" else None
    used, excluded = _eligible(ds, periods if need_observations else {"test": periods["test"]}, limit,
                               min(365, len(pd.date_range(*periods["test"])) // 2) if need_observations else 0)
    if not used:
        raise DataError(f"no basin of the {kind} data is eligible: {dict(list(excluded.items())[:3])}")
    first = periods.get("train", periods["test"])
    inputs = _network_inputs(kind, cfg.data.inputs, ds, used, first, notes)
    notes += [f"basins: {len(used)} used, {len(excluded)} excluded", f"network inputs: {inputs}",
              f"attributes: {len(attributes)}"]
    report = ds.attrs.get("validation_report")
    report = ValidationReport.from_dataset(ds) if report is not None else None
    return ExperimentData(ds=ds, kind=kind, root=folder, periods=periods, basins=used, excluded=excluded,
                          inputs=inputs, attributes=attributes, pet=pet_note, notes=[source_note] + notes,
                          report=report)
