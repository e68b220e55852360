"""Caravan reader (Kratzert et al. 2023, Sci. Data 10, 61, doi:10.1038/s41597-023-01975-w).

Layout under ``root``::

    timeseries/csv/<source>/<source>_<gauge>.csv        (a ``date`` column, one row per day)
    timeseries/netcdf/<source>/<source>_<gauge>.nc      (or ``<gauge>.nc``; ``date`` dimension)
    attributes/<source>/attributes_*_<source>.csv       (``gauge_id`` = ``<source>_<gauge>``)

Caravan names are mapped to the package's names (:data:`CARAVAN_NAMES`); every other
column is kept under its Caravan name, with the units Caravan gives it (:data:`CARAVAN_UNITS`:
the ERA5-Land series of the full product, e.g. ``surface_net_solar_radiation_mean`` in
W m-2), so a user's copy with more columns than the shared three forcing series offers them
as network inputs by name.
"""

from __future__ import annotations

import functools

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from .validation import validated
from ._common import (DataFileError, add_note, check_daily, check_table_lines, daily_axis, encode_counts,
    encode_spans, join_attribute_tables, mask_sentinels, normalise_basin_ids, options_key, place_on_axis,
    read_cached, read_csv_records, set_units, source_fingerprint, with_day_length, write_cached)

__all__ = ["CARAVAN_NAMES", "CARAVAN_UNITS", "caravan_column_attrs", "load_caravan", "read_caravan_timeseries",
           "read_caravan_attributes"]

CARAVAN_NAMES = {
    "total_precipitation_sum": "precipitation",
    "temperature_2m_mean": "temperature",
    "temperature_2m_max": "tmax",
    "temperature_2m_min": "tmin",
    "potential_evaporation_sum": "pet",
    "streamflow": "streamflow",
}
# streamflow is optional: a file without it (forcing only, for prediction) loads with
# streamflow all NaN, and the data set says so in its notes
#: package name -> Caravan column
_CARAVAN_COLUMN = {v: k for k, v in CARAVAN_NAMES.items()}
_REQUIRED = ("total_precipitation_sum", "temperature_2m_mean", "potential_evaporation_sum")
_EXTRA_ATTRS = {"pet": {"units": "mm d-1", "long_name": "potential evaporation (ERA5-Land; may be slightly negative)"}}
#: units and long names of the ERA5-Land series of Caravan (Kratzert et al. 2023, Table 2; the
#: conversions of Caravan's ``era5l_unit_conversion``) by column stem; a column is the stem
#: plus a daily aggregate suffix (``_mean``, ``_min``, ``_max``, ``_sum``, possibly more, e.g.
#: ``potential_evaporation_sum_FAO_PENMAN_MONTEITH``). Daily sums are per day.
CARAVAN_UNITS: dict[str, tuple[str, str]] = {
    "total_precipitation": ("mm d-1", "precipitation (ERA5-Land)"),
    "potential_evaporation": ("mm d-1", "potential evaporation"),
    "temperature_2m": ("degC", "2 m air temperature (ERA5-Land)"),
    "dewpoint_temperature_2m": ("degC", "2 m dew-point temperature (ERA5-Land)"),
    "surface_net_solar_radiation": ("W m-2", "surface net shortwave radiation (ERA5-Land)"),
    "surface_net_thermal_radiation": ("W m-2", "surface net longwave radiation (ERA5-Land)"),
    "surface_pressure": ("kPa", "surface air pressure (ERA5-Land)"),
    "snow_depth_water_equivalent": ("mm", "snow water equivalent (ERA5-Land)"),
    "u_component_of_wind_10m": ("m s-1", "10 m eastward wind (ERA5-Land)"),
    "v_component_of_wind_10m": ("m s-1", "10 m northward wind (ERA5-Land)"),
    "volumetric_soil_water_layer_1": ("m3 m-3", "volumetric soil water 0-7 cm (ERA5-Land)"),
    "volumetric_soil_water_layer_2": ("m3 m-3", "volumetric soil water 7-28 cm (ERA5-Land)"),
    "volumetric_soil_water_layer_3": ("m3 m-3", "volumetric soil water 28-100 cm (ERA5-Land)"),
    "volumetric_soil_water_layer_4": ("m3 m-3", "volumetric soil water 100-289 cm (ERA5-Land)"),
    "streamflow": ("mm d-1", "observed streamflow"),
}
_AGGREGATES = ("mean", "min", "max", "sum")


def caravan_column_attrs(column: str) -> dict[str, str] | None:
    """``{"units", "long_name"}`` of a Caravan time-series column (e.g.
    ``dewpoint_temperature_2m_min`` -> degC, "... (daily min)"), or None for a column that is
    not one of Caravan's series."""
    for stem, (units, long_name) in sorted(CARAVAN_UNITS.items(), key=lambda kv: -len(kv[0])):
        if column == stem:
            return {"units": units, "long_name": long_name}
        if column.startswith(stem + "_"):
            aggregate = column[len(stem) + 1:].split("_")[0]
            if aggregate in _AGGREGATES:
                return {"units": units, "long_name": f"{long_name} (daily {aggregate})"}
    return None


def _gauge_from_name(stem: str, source: str) -> str:
    prefix = f"{source}_"
    return stem[len(prefix):] if stem.startswith(prefix) else stem


def _index_files(folder: Path, suffix: str, source: str) -> dict[str, Path]:
    found: dict[str, Path] = {}
    if folder.is_dir():
        for path in sorted(folder.glob(f"*{suffix}")):
            gauge = _gauge_from_name(path.stem, source)
            if gauge in found:
                raise DataFileError(f"two files for one basin: {found[gauge]} and {path}", path, gauge)
            found[gauge] = path
    return found


def _check_columns(columns, path, basin):
    missing = [c for c in _REQUIRED if c not in columns]
    if missing:
        raise DataFileError(f"column(s) {missing} missing; file has {list(columns)}", path, basin)


def read_caravan_timeseries(
    path, basin: str, *, sentinels: dict[str, int] | None = None
) -> tuple[pd.DatetimeIndex, dict[str, np.ndarray]]:
    """Read one Caravan time-series file (CSV or netCDF).

    Returns ``(dates, values)`` with ``values`` keyed by Caravan column names (float64;
    empty cells and ``NaN`` / ``NA`` are NaN, as are the sentinels -999 / -9999, whose
    number per column goes to ``sentinels`` when a dict is given).

    Raises :class:`DataFileError` naming the file, the basin and (CSV) the 1-based line:
    a missing header line, another delimiter, a missing ``date`` or required column, a
    line with another number of fields, a non-numeric cell, an invalid, duplicated,
    unordered or missing day, and a CSV whose last line lacks its line break (a file cut
    mid-line; Caravan files end with one).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"basin {basin}: time-series file not found: {path}")
    if path.suffix == ".nc":
        try:
            nc = xr.open_dataset(path)
        except (OSError, ValueError) as err:
            raise DataFileError(f"cannot be opened as netCDF: {err}", path, basin) from None
        with nc:
            time_dim = "date" if "date" in nc.dims else "time" if "time" in nc.dims else None
            if time_dim is None:
                raise DataFileError(f"no 'date' dimension; dims are {dict(nc.sizes)}", path, basin)
            _check_columns(nc.data_vars, path, basin)
            dates = pd.DatetimeIndex(nc[time_dim].values)
            values, counts = {}, {}
            for k, v in nc.data_vars.items():
                if v.dims == (time_dim,):
                    values[k], counts[k] = mask_sentinels(np.asarray(v.values, np.float64))
        check_daily(dates, path, basin)
    else:
        dates, values, counts = read_csv_records(path, basin, time_column="date", required=_REQUIRED, final_newline=True)
    if sentinels is not None:
        sentinels.update(counts)
    return dates, values


def read_caravan_attributes(root, source: str = "camels", basins: list[str] | None = None) -> pd.DataFrame:
    """All ``attributes/<source>/attributes_*_<source>.csv`` joined on the gauge id.

    The index is the gauge id without the ``<source>_`` prefix. With ``basins`` given,
    every table must hold every basin (else :class:`DataFileError` naming table and basin).
    """
    folder = Path(root) / "attributes" / source
    files = sorted(folder.glob(f"attributes_*_{source}.csv"))
    if not files:
        raise FileNotFoundError(f"no attributes_*_{source}.csv tables in {folder}")
    def read(path):
        check_table_lines(path, ",")  # a cut or mis-delimited row names its line, never loads as NaN
        try:
            table = pd.read_csv(path, dtype={"gauge_id": str})
        except (ValueError, pd.errors.ParserError) as err:
            raise DataFileError(f"cannot be parsed as CSV: {err}", path) from None
        if "gauge_id" not in table.columns:
            raise DataFileError(f"no 'gauge_id' column; columns are {list(table.columns)}", path)
        ids = table.pop("gauge_id")
        repeat = np.flatnonzero(ids.duplicated().to_numpy())
        if repeat.size:
            line = int(repeat[0]) + 2
            raise DataFileError(f"duplicate gauge_id {ids.iloc[repeat[0]]!r} (first repeat on line {line})", path, line=line)
        table.index = [_gauge_from_name(g, source) for g in ids]
        return table

    return join_attribute_tables(((path, read(path)) for path in files), basins)


STANDARD_ATTRIBUTE_TABLES = ("caravan", "hydroatlas", "other")


def load_caravan(
    root,
    basins=None,
    source: str = "camels",
    start=None,
    end=None,
    *,
    format: str = "auto",
    day_length: bool = True,
    cache_dir=None,
    record="common",
    validate: bool = True,
    policies=None,
    required_attributes=None,
    required_columns=(),
) -> xr.Dataset:
    """Load Caravan basins of one ``source`` into one ``xarray.Dataset``.

    Args:
        root: the Caravan folder (holding ``timeseries`` and ``attributes``).
        basins: gauge ids with or without the ``<source>_`` prefix (CAMELS ids are
            zero-padded to 8 characters), or ``None`` for every basin with a file.
        source: Caravan sub-data set, e.g. ``"camels"``, ``"camelsgb"``, ``"hysets"``.
        start, end: first and last day (inclusive); default: union of all records.
        format: ``"csv"``, ``"netcdf"`` or ``"auto"`` (CSV where present, else netCDF).
        day_length: add ``day_length`` (h) computed from ``gauge_lat`` (FAO-56), which
            Caravan does not ship but EXP-HYDRO-type models need.
        cache_dir: optional netCDF cache, re-used while options and sources are unchanged
            (it holds the data as read; the validation runs on every load).
        record: the declared record every file must cover, against which a cut file is
            detected. ``"common"`` (default): every Caravan file of a source spans the
            same days (the product is built that way), so a file that ends before (or
            starts after) the others is a truncated record and raises a
            :class:`DataFileError` naming the file and its last line. ``(first, last)``:
            every file must cover these days. ``None``: no check. (A file cut mid-line is
            caught by the reader whatever ``record`` says.)
        validate, policies, required_attributes: the validation pass, as in
            :func:`~difhydro.data.camels.load_camels_us`.
        required_columns: time-series columns every file must hold, by Caravan name
            (``surface_net_solar_radiation_mean``) or package name (``precipitation``),
            e.g. the network inputs a config names; a missing one is a
            :class:`DataFileError` naming the file and the columns it has.

    Returns:
        Dataset on ``(basin, time)`` with ``precipitation`` (mm d-1), ``temperature``
        (deg C), ``pet`` (mm d-1), ``streamflow`` (mm d-1, empty cells NaN), ``tmax`` /
        ``tmin`` when the files have them, every other column under its Caravan name, and
        every attribute as a ``(basin,)`` variable. The ``basin`` coordinate holds the
        gauge id without the source prefix, so CAMELS basins match :func:`load_camels_us`.
        Attribute tables absent from the standard three (caravan, hydroatlas, other) are
        named in ``attrs["data_notes"]`` and in the validation report.
    """
    if format not in ("auto", "csv", "netcdf"):
        raise ValueError(f"format must be 'auto', 'csv' or 'netcdf', got {format!r}")
    if not (record is None or record == "common" or (isinstance(record, (tuple, list)) and len(record) == 2)):
        raise ValueError(f"record must be 'common', (first, last) or None, got {record!r}")
    root = Path(root)
    csv_files = _index_files(root / "timeseries" / "csv" / source, ".csv", source) if format != "netcdf" else {}
    nc_files = _index_files(root / "timeseries" / "netcdf" / source, ".nc", source) if format != "csv" else {}
    files = {**nc_files, **csv_files}
    if not files:
        raise FileNotFoundError(f"no {source} time-series files below {root / 'timeseries'} (format={format!r})")
    width = 8 if source == "camels" else None
    basins = normalise_basin_ids(
        [_gauge_from_name(str(b), source) for b in ([basins] if isinstance(basins, (str, int)) else basins)]
        if basins is not None
        else None,
        width,
    )
    basins = sorted(files) if basins is None else basins
    for b in basins:
        if b not in files:
            raise FileNotFoundError(
                f"basin {b}: no time-series file {source}_{b}.csv / .nc below {root / 'timeseries'}"
            )
    attr_files = sorted((root / "attributes" / source).glob(f"attributes_*_{source}.csv"))
    key = options_key("caravan", basins=basins, source=source, start=start, end=end, format=format,
                      day_length=day_length, root=str(root.resolve()), record=record, reader=2)
    fingerprint = source_fingerprint([files[b] for b in basins] + attr_files) if cache_dir is not None else ""

    finish = functools.partial(validated, enabled=validate, policies=policies,
                               required_attributes=required_attributes, source=f"Caravan {source} ({root})")

    wanted = [_CARAVAN_COLUMN.get(str(c), str(c)) for c in ([required_columns] if isinstance(required_columns, str)
                                                            else required_columns)]
    cached = read_cached(cache_dir, key, fingerprint)
    if cached is not None:
        absent = [c for c in wanted if CARAVAN_NAMES.get(c, c) not in cached]
        if absent:  # the cache holds what the files hold (their fingerprint is unchanged)
            have = [_CARAVAN_COLUMN.get(str(v), str(v)) for v in cached.data_vars
                    if cached[v].dims == ("basin", "time") and v != "day_length"]
            raise DataFileError(f"required column(s) {absent} missing; file has {['date'] + have}",
                                files[basins[0]], basins[0])
        return finish(cached)

    static = read_caravan_attributes(root, source, basins)
    counts = [{} for _ in basins]
    records = [read_caravan_timeseries(files[b], b, sentinels=c) for b, c in zip(basins, counts)]
    if record is not None:
        _check_record(record, basins, records, files)
    axis = daily_axis([(d[0], d[-1]) for d, _ in records], start, end)
    columns = list(records[0][1])
    for b, (_, values) in zip(basins, records):
        absent = [c for c in wanted if c not in values]
        if absent:
            raise DataFileError(f"required column(s) {absent} missing; file has {['date'] + list(values)}", files[b], b)
    if any("streamflow" in values for _, values in records):  # optional only when no file has it
        columns = columns if "streamflow" in columns else columns + ["streamflow"]
    for b, (_, values) in zip(basins, records):
        missing = [c for c in columns if c not in values]
        if missing:
            raise DataFileError(f"column(s) {missing} missing; file has {list(values)}", files[b], b)
        if list(values) != columns:
            raise DataFileError(f"columns {list(values)} differ from those of {basins[0]}: {columns}", files[b], b)
    dims = ("basin", "time")
    data = {
        CARAVAN_NAMES.get(c, c): (dims, np.stack([place_on_axis(v[c], d, axis) for d, v in records]).astype(np.float32))
        for c in columns
    }
    ds = xr.Dataset(data, coords={"basin": np.array(basins, dtype=str), "time": axis})
    spans = encode_spans({b: (d[0], d[-1]) for b, (d, _) in zip(basins, records)})
    for c in columns:
        ds[CARAVAN_NAMES.get(c, c)].attrs["sentinel_counts"] = encode_counts({b: n.get(c, 0) for b, n in zip(basins, counts)})
        ds[CARAVAN_NAMES.get(c, c)].attrs["record"] = spans
    ds = ds.assign({  # one assignment: 200+ attributes one by one take a second
        col: ("basin", static[col].to_numpy().astype(np.float32 if pd.api.types.is_numeric_dtype(static[col]) else str))
        for col in static.columns
    })
    if "streamflow" not in ds:
        ds["streamflow"] = (dims, np.full((len(basins), len(axis)), np.nan, np.float32))
        add_note(ds, "the time-series files have no streamflow column: streamflow is missing (NaN) throughout")
    set_units(ds, _EXTRA_ATTRS)
    unknown = []
    for c in columns:
        if c in CARAVAN_NAMES:
            continue
        attrs = caravan_column_attrs(c)
        if attrs is None:
            unknown.append(c)
        else:
            ds[c].attrs.update(attrs)
    if unknown:
        add_note(ds, f"time-series column(s) {', '.join(unknown)} of {files[basins[0]].parent} are not Caravan series: "
                     "loaded under their own names without units")
    if day_length:
        ds = with_day_length(ds, "gauge_lat")
    ds.attrs.update(
        title=f"Caravan ({source})",
        source=str(root),
        references="Kratzert et al. 2023, Sci. Data 10, 61, doi:10.1038/s41597-023-01975-w",
        attribute_tables=" ".join(p.name for p in attr_files),
    )
    found = {p.name[len("attributes_"): -len(f"_{source}.csv")] for p in attr_files}
    absent = [t for t in STANDARD_ATTRIBUTE_TABLES if t not in found]
    if absent:
        add_note(ds, f"attribute table(s) {', '.join(f'attributes_{t}_{source}.csv' for t in absent)} missing in "
                     f"{root / 'attributes' / source}: {len(static.columns)} attribute(s) loaded from "
                     f"{len(attr_files)} table(s)")
    write_cached(ds, cache_dir, key, fingerprint)
    return finish(ds)


def _check_record(record, basins, records, files) -> None:
    """Every file covers the declared record (see ``record`` of :func:`load_caravan`)."""
    firsts = np.array([d[0] for d, _ in records], dtype="datetime64[D]")
    lasts = np.array([d[-1] for d, _ in records], dtype="datetime64[D]")
    if record == "common":
        first, last = firsts.min(), lasts.max()
        what = f"the other files span {first}..{last}"
    else:
        first, last = (np.datetime64(pd.Timestamp(x).date(), "D") for x in record)
        what = f"the declared record is {first}..{last}"
    short = np.flatnonzero(lasts < last)
    if short.size:
        i = int(short[0])
        path = files[basins[i]]
        n_lines = len(records[i][0]) + (1 if path.suffix != ".nc" else 0)
        where = f" (line {n_lines}, the last line)" if path.suffix != ".nc" else ""
        raise DataFileError(
            f"record ends on {lasts[i]}{where} but {what}: the file looks truncated "
            f"({int((last - lasts[i]).astype(int))} day(s) short; {short.size} file(s) end early)",
            path, basins[i], line=n_lines if path.suffix != ".nc" else None,
        )
    late = np.flatnonzero(firsts > first)
    if late.size:
        i = int(late[0])
        raise DataFileError(
            f"record starts on {firsts[i]} but {what}: the first {int((firsts[i] - first).astype(int))} day(s) are "
            f"missing ({late.size} file(s) start late)",
            files[basins[i]], basins[i], line=2 if files[basins[i]].suffix != ".nc" else None,
        )
