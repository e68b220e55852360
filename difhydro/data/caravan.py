"""Caravan reader (Kratzert et al. 2023, Sci. Data 10, 61, doi:10.1038/s41597-023-01975-w).

Layout under ``root``::

    timeseries/csv/<source>/<source>_<gauge>.csv        (a ``date`` column, one row per day)
    timeseries/netcdf/<source>/<source>_<gauge>.nc      (or ``<gauge>.nc``; ``date`` dimension)
    attributes/<source>/attributes_*_<source>.csv       (``gauge_id`` = ``<source>_<gauge>``)

Caravan names are mapped to the package's names (:data:`CARAVAN_NAMES`); every other
column is kept under its Caravan name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ._common import (
    DataFileError,
    check_daily,
    daily_axis,
    join_attribute_tables,
    normalise_basin_ids,
    options_key,
    place_on_axis,
    read_cached,
    set_units,
    source_fingerprint,
    with_day_length,
    write_cached,
)

__all__ = ["CARAVAN_NAMES", "load_caravan", "read_caravan_timeseries", "read_caravan_attributes"]

CARAVAN_NAMES = {
    "total_precipitation_sum": "precipitation",
    "temperature_2m_mean": "temperature",
    "temperature_2m_max": "tmax",
    "temperature_2m_min": "tmin",
    "potential_evaporation_sum": "pet",
    "streamflow": "streamflow",
}
_REQUIRED = ("total_precipitation_sum", "temperature_2m_mean", "potential_evaporation_sum", "streamflow")
_EXTRA_ATTRS = {"pet": {"units": "mm d-1", "long_name": "potential evaporation (ERA5-Land; may be slightly negative)"}}


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


def read_caravan_timeseries(path, basin: str) -> tuple[pd.DatetimeIndex, dict[str, np.ndarray]]:
    """Read one Caravan time-series file (CSV or netCDF).

    Returns ``(dates, values)`` with ``values`` keyed by Caravan column names (float64,
    empty cells NaN). Raises :class:`DataFileError` for a missing ``date`` or required
    column, a non-numeric cell or a date gap.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"basin {basin}: time-series file not found: {path}")
    if path.suffix == ".nc":
        with xr.open_dataset(path) as nc:
            time_dim = "date" if "date" in nc.dims else "time" if "time" in nc.dims else None
            if time_dim is None:
                raise DataFileError(f"no 'date' dimension; dims are {dict(nc.sizes)}", path, basin)
            _check_columns(nc.data_vars, path, basin)
            dates = pd.DatetimeIndex(nc[time_dim].values)
            values = {k: np.asarray(v.values, np.float64) for k, v in nc.data_vars.items() if v.dims == (time_dim,)}
    else:
        try:
            table = pd.read_csv(path)
        except (ValueError, pd.errors.ParserError) as err:
            raise DataFileError(f"cannot be parsed as CSV: {err}", path, basin) from None
        if "date" not in table.columns:
            raise DataFileError(f"no 'date' column; columns are {list(table.columns)}", path, basin)
        _check_columns(table.columns, path, basin)
        try:
            dates = pd.DatetimeIndex(pd.to_datetime(table.pop("date"), format="%Y-%m-%d"))
        except (ValueError, TypeError) as err:
            raise DataFileError(f"invalid date: {err}", path, basin) from None
        values = {}
        for col in table.columns:
            series = pd.to_numeric(table[col], errors="coerce")
            bad = series.isna() & table[col].notna()
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise DataFileError(
                    f"non-numeric value {table[col].iloc[row]!r} in column '{col}' on line {row + 2}", path, basin
                )
            values[col] = series.to_numpy(np.float64)
    check_daily(dates, path, basin)
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
        try:
            table = pd.read_csv(path, dtype={"gauge_id": str})
        except (ValueError, pd.errors.ParserError) as err:
            raise DataFileError(f"cannot be parsed as CSV: {err}", path) from None
        if "gauge_id" not in table.columns:
            raise DataFileError(f"no 'gauge_id' column; columns are {list(table.columns)}", path)
        table.index = [_gauge_from_name(g, source) for g in table.pop("gauge_id")]
        return table

    return join_attribute_tables(((path, read(path)) for path in files), basins)


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
        cache_dir: optional netCDF cache, re-used while options and sources are unchanged.

    Returns:
        Dataset on ``(basin, time)`` with ``precipitation`` (mm d-1), ``temperature``
        (deg C), ``pet`` (mm d-1), ``streamflow`` (mm d-1, empty cells NaN), ``tmax`` /
        ``tmin`` when the files have them, every other column under its Caravan name, and
        every attribute as a ``(basin,)`` variable. The ``basin`` coordinate holds the
        gauge id without the source prefix, so CAMELS basins match :func:`load_camels_us`.
    """
    if format not in ("auto", "csv", "netcdf"):
        raise ValueError(f"format must be 'auto', 'csv' or 'netcdf', got {format!r}")
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
                      day_length=day_length, root=str(root.resolve()))
    fingerprint = source_fingerprint([files[b] for b in basins] + attr_files) if cache_dir is not None else ""
    cached = read_cached(cache_dir, key, fingerprint)
    if cached is not None:
        return cached

    static = read_caravan_attributes(root, source, basins)
    records = [read_caravan_timeseries(files[b], b) for b in basins]
    axis = daily_axis([(d[0], d[-1]) for d, _ in records], start, end)
    columns = list(records[0][1])
    for b, (_, values) in zip(basins, records):
        if list(values) != columns:
            raise DataFileError(f"columns {list(values)} differ from those of {basins[0]}: {columns}", files[b], b)
    dims = ("basin", "time")
    data = {
        CARAVAN_NAMES.get(c, c): (dims, np.stack([place_on_axis(v[c], d, axis) for d, v in records]).astype(np.float32))
        for c in columns
    }
    ds = xr.Dataset(data, coords={"basin": np.array(basins, dtype=str), "time": axis})
    for col in static.columns:
        values = static[col].to_numpy()
        ds[col] = ("basin", values.astype(np.float32) if pd.api.types.is_numeric_dtype(static[col]) else values.astype(str))
    set_units(ds, _EXTRA_ATTRS)
    if day_length:
        ds = with_day_length(ds, "gauge_lat")
    ds.attrs.update(
        title=f"Caravan ({source})",
        source=str(root),
        references="Kratzert et al. 2023, Sci. Data 10, 61, doi:10.1038/s41597-023-01975-w",
    )
    write_cached(ds, cache_dir, key, fingerprint)
    return ds
