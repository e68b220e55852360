"""Helpers shared by the readers: errors that name file and basin, daily axes, units.

Everything here runs on the host (NumPy / pandas) once per load; nothing is jit-compiled.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

__all__ = [
    "DataFileError",
    "VARIABLE_ATTRS",
    "normalise_basin_ids",
    "check_daily",
    "place_on_axis",
    "daily_axis",
    "with_day_length",
    "set_units",
    "options_key",
    "source_fingerprint",
    "read_cached",
    "write_cached",
]

# Units and names every reader attaches, so that all data sets agree.
VARIABLE_ATTRS: dict[str, dict[str, str]] = {
    "precipitation": {"units": "mm d-1", "long_name": "precipitation"},
    "temperature": {"units": "degC", "long_name": "daily mean air temperature"},
    "tmax": {"units": "degC", "long_name": "daily maximum air temperature"},
    "tmin": {"units": "degC", "long_name": "daily minimum air temperature"},
    "day_length": {"units": "h", "long_name": "day length"},
    "srad": {"units": "W m-2", "long_name": "daily mean shortwave radiation"},
    "vp": {"units": "Pa", "long_name": "water vapour pressure"},
    "swe": {"units": "mm", "long_name": "snow water equivalent"},
    "pet": {"units": "mm d-1", "long_name": "potential evapotranspiration"},
    "streamflow": {"units": "mm d-1", "long_name": "observed streamflow per unit catchment area"},
}


class DataFileError(ValueError):
    """A data file is malformed or inconsistent; the message names the file and basin."""

    def __init__(self, message: str, path: os.PathLike | str | None = None, basin: str | None = None):
        where = []
        if basin is not None:
            where.append(f"basin {basin}")
        if path is not None:
            where.append(f"file {path}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)
        self.path = None if path is None else Path(path)
        self.basin = basin


def normalise_basin_ids(basins: Iterable | str | int | None, width: int | None = 8) -> list[str] | None:
    """Basin ids as strings; integers and short digit strings are zero-padded to ``width``.

    CAMELS gauge ids are 8-digit strings with leading zeros (``"01022500"``); reading them
    as integers loses the zero, so ``1022500`` is accepted and restored.
    """
    if basins is None:
        return None
    if isinstance(basins, (str, int, np.integer)):
        basins = [basins]
    out = []
    for b in basins:
        s = str(b).strip()
        if width is not None and s.isdigit() and len(s) < width:
            s = s.zfill(width)
        out.append(s)
    if len(set(out)) != len(out):
        dup = sorted({b for b in out if out.count(b) > 1})
        raise ValueError(f"basins contains duplicates: {dup}")
    if not out:
        raise ValueError("basins is empty; pass None for all basins")
    return out


def check_daily(dates: pd.DatetimeIndex, path, basin: str) -> None:
    """Raise :class:`DataFileError` unless ``dates`` are consecutive days without gaps."""
    if len(dates) == 0:
        raise DataFileError("contains no data rows", path, basin)
    step = np.diff(dates.values.astype("datetime64[D]").astype(np.int64))
    bad = np.flatnonzero(step != 1)
    if bad.size:
        i = int(bad[0])
        kind = "date gap" if step[i] > 1 else "duplicate or unordered date"
        raise DataFileError(
            f"{kind} between {dates[i].date()} and {dates[i + 1].date()} "
            f"({bad.size} irregular step(s)); records must be consecutive days",
            path,
            basin,
        )


def daily_axis(ranges: Sequence[tuple[pd.Timestamp, pd.Timestamp]], start=None, end=None) -> pd.DatetimeIndex:
    """The daily axis spanning all ``(first, last)`` ranges, clipped to ``[start, end]``."""
    first = min(r[0] for r in ranges) if start is None else pd.Timestamp(start)
    last = max(r[1] for r in ranges) if end is None else pd.Timestamp(end)
    if last < first:
        raise ValueError(f"end {last.date()} lies before start {first.date()}")
    return pd.date_range(first, last, freq="D", name="time")


def place_on_axis(values: np.ndarray, dates: pd.DatetimeIndex, axis: pd.DatetimeIndex, fill=np.nan) -> np.ndarray:
    """Put a consecutive daily record onto ``axis`` (NaN / ``fill`` outside the record)."""
    out = np.full((len(axis),) + values.shape[1:], fill, dtype=values.dtype)
    offset = int((dates[0] - axis[0]) / pd.Timedelta(days=1))
    lo, hi = max(offset, 0), min(offset + len(dates), len(axis))
    if hi > lo:
        out[lo:hi] = values[lo - offset : hi - offset]
    return out


def set_units(ds: xr.Dataset, extra: Mapping[str, Mapping[str, str]] | None = None) -> xr.Dataset:
    """Attach :data:`VARIABLE_ATTRS` (and ``extra``) to the variables present in ``ds``."""
    table = {**VARIABLE_ATTRS, **(extra or {})}
    for name, attrs in table.items():
        if name in ds.variables:
            ds[name].attrs.update(attrs)
    return ds


def with_day_length(ds: xr.Dataset, latitude: str | float | np.ndarray = "gauge_lat") -> xr.Dataset:
    """Add ``day_length`` (h, FAO-56 astronomy) on ``(basin, time)`` from the latitude.

    Args:
        ds: data set with a daily ``time`` coordinate and a ``basin`` dimension.
        latitude: name of a ``(basin,)`` variable in degrees north, or the values
            themselves (scalar or ``[basin]``).
    """
    from ..physics import day_length  # the one FAO-56 implementation of the package

    if isinstance(latitude, str):
        if latitude not in ds:
            raise ValueError(f"latitude variable '{latitude}' not found; data set has {sorted(ds.data_vars)}")
        lat = np.asarray(ds[latitude].values, dtype=np.float64)
    else:
        lat = np.broadcast_to(np.asarray(latitude, dtype=np.float64), (ds.sizes["basin"],))
    if not np.all(np.isfinite(lat)) or np.any(np.abs(lat) > 90):
        raise ValueError(f"latitude must be finite degrees in [-90, 90], got {lat}")
    doy = pd.DatetimeIndex(ds["time"].values).dayofyear.values.astype(np.float32)
    hours = np.asarray(day_length(lat[:, None].astype(np.float32), doy[None, :]), dtype=np.float32)
    out = ds.assign(day_length=(("basin", "time"), hours))
    out["day_length"].attrs.update(
        VARIABLE_ATTRS["day_length"], comment="computed from latitude with FAO-56 Eq. 34 (Allen et al. 1998)"
    )
    return out


# -- cache -------------------------------------------------------------------------------


def options_key(name: str, **options) -> str:
    """Cache prefix ``name-<hash of options>``: one cache entry per distinct request."""
    h = hashlib.sha256(repr(sorted((k, repr(v)) for k, v in options.items())).encode())
    return f"{name}-{h.hexdigest()[:16]}"


def source_fingerprint(paths: Iterable[os.PathLike | str]) -> str:
    """Hash of every source file's path, size and mtime.

    Any edit, replacement or addition of a source file changes the fingerprint, which
    invalidates a cached copy.
    """
    h = hashlib.sha256()
    for p in sorted(str(p) for p in paths):
        st = os.stat(p)
        h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:24]


def read_cached(cache_dir, prefix: str, fingerprint: str) -> xr.Dataset | None:
    """The cached data set for ``fingerprint`` or ``None``."""
    if cache_dir is None:
        return None
    path = Path(cache_dir) / f"{prefix}-{fingerprint}.nc"
    if not path.is_file():
        return None
    with xr.open_dataset(path) as ds:
        out = ds.load()
    for name in out.variables:
        if out[name].dtype == object:  # netCDF strings come back as object arrays
            out[name] = out[name].astype(str)
    return out


def write_cached(ds: xr.Dataset, cache_dir, prefix: str, fingerprint: str) -> None:
    """Write ``ds`` to ``cache_dir/prefix-fingerprint.nc``, dropping stale copies."""
    if cache_dir is None:
        return
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    for old in cache_dir.glob(f"{prefix}-*.nc"):  # same request, older sources
        old.unlink()
    tmp = cache_dir / f"{prefix}-{fingerprint}.nc.tmp"
    ds.to_netcdf(tmp)
    tmp.replace(cache_dir / f"{prefix}-{fingerprint}.nc")


def join_attribute_tables(tables, basins=None) -> pd.DataFrame:
    """Join ``(path, table indexed by basin)`` pairs column-wise.

    With ``basins`` given, every table must hold every basin; a basin missing from a table,
    or a column repeated by two tables, raises a :class:`DataFileError` naming the file.
    """
    parts = []
    for path, table in tables:
        if basins is not None:
            absent = [b for b in basins if b not in table.index]
            if absent:
                raise DataFileError(f"has no row for basin(s) {absent}", path, absent[0])
            table = table.loc[basins]
        seen = set().union(*(p.columns for p in parts)) if parts else set()
        if set(table.columns) & seen:
            raise DataFileError(f"repeats attribute column(s) {sorted(set(table.columns) & seen)} of another table", path)
        parts.append(table)
    return pd.concat(parts, axis=1, join="outer")

