"""Helpers shared by the readers: errors that name file, basin and line, line-exact
parsing, sentinels, daily axes, units.

Everything here runs on the host (NumPy / pandas) once per load; nothing is jit-compiled.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from .variables import VARIABLE_ATTRS

__all__ = [
    "DataFileError",
    "SENTINELS",
    "VARIABLE_ATTRS",
    "mask_sentinels",
    "encode_counts",
    "decode_counts",
    "encode_spans",
    "decode_spans",
    "add_note",
    "locate_bad_line",
    "read_csv_records",
    "check_table_lines",
    "is_number",
    "read_text",
    "row_dates",
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



class DataFileError(ValueError):
    """A data file is malformed or inconsistent.

    The message starts with where the problem is: ``basin <id>, file <path>, line <n>,
    column '<name>': <what is wrong>`` (the parts that are known). ``line`` is 1-based and
    counts every line of the file, header lines included; ``path``, ``basin``, ``line`` and
    ``column`` are also kept as attributes.
    """

    def __init__(
        self,
        message: str,
        path: os.PathLike | str | None = None,
        basin: str | None = None,
        *,
        line: int | None = None,
        column: str | None = None,
    ):
        where = []
        if basin is not None:
            where.append(f"basin {basin}")
        if path is not None:
            where.append(f"file {path}")
        if line is not None and not re.search(rf"\bline {int(line)}\b", message):
            where.append(f"line {int(line)}")
        if column is not None and f"'{column}'" not in message:
            where.append(f"column '{column}'")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)
        self.path = None if path is None else Path(path)
        self.basin = basin
        self.line = None if line is None else int(line)
        self.column = column


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


def check_daily(dates: pd.DatetimeIndex, path, basin: str, first_line: int | None = None) -> None:
    """Raise :class:`DataFileError` unless ``dates`` are consecutive days without gaps.

    With ``first_line`` (the 1-based file line of ``dates[0]``; one date per line) the
    error names the offending line. Duplicated or unordered dates are reported before
    gaps: a swapped pair of lines also leaves a gap, but the cause is the order.
    """
    if len(dates) == 0:
        raise DataFileError("contains no data rows", path, basin)
    step = np.diff(dates.values.astype("datetime64[D]").astype(np.int64))

    def where(i):  # the later line of the pair (i, i + 1)
        return None if first_line is None else first_line + i + 1

    back = np.flatnonzero(step <= 0)
    if back.size:
        i = int(back[0])
        line = where(i)
        prev = f"{dates[i].date()}" + ("" if line is None else f" on line {line - 1}")
        what = "repeats" if step[i] == 0 else "comes after"
        raise DataFileError(
            ("" if line is None else f"line {line}: ")
            + f"date {dates[i + 1].date()} {what} {prev} (duplicate or unordered dates, {back.size} in all); "
            "records must be consecutive days",
            path,
            basin,
            line=line,
        )
    gaps = np.flatnonzero(step != 1)
    if gaps.size:
        i = int(gaps[0])
        line = where(i)
        raise DataFileError(
            ("" if line is None else f"line {line}: ")
            + f"date gap between {dates[i].date()} and {dates[i + 1].date()} ({int(step[i]) - 1} day(s) missing, "
            f"{gaps.size} irregular step(s)); records must be consecutive days",
            path,
            basin,
            line=line,
        )


# -- sentinels ------------------------------------------------------------------------------

#: Codes that mark a missing value in CAMELS, Caravan-style and many agency files. They are
#: turned into NaN by every reader and counted (never loaded as values).
SENTINELS: tuple[float, ...] = (-999.0, -9999.0)


def mask_sentinels(values: np.ndarray) -> tuple[np.ndarray, int]:
    """``values`` (float64 copy) with :data:`SENTINELS` set to NaN, and how many there were."""
    out = np.array(values, dtype=np.float64, copy=True)
    hit = np.isin(out, SENTINELS)
    n = int(hit.sum())
    if n:
        out[hit] = np.nan
    return out, n


def encode_counts(counts: Mapping[str, int]) -> str:
    """``{"01022500": 92}`` -> ``"01022500=92"`` (non-zero entries only; a netCDF-safe attr)."""
    return " ".join(f"{k}={int(v)}" for k, v in counts.items() if int(v))


def decode_counts(text) -> dict[str, int]:
    """Inverse of :func:`encode_counts` (an absent / empty attribute gives ``{}``)."""
    out: dict[str, int] = {}
    for item in str(text or "").split():
        key, _, value = item.rpartition("=")
        if key:
            out[key] = int(value)
    return out


def encode_spans(spans: Mapping[str, tuple]) -> str:
    """``{"01022500": (first, last)}`` -> ``"01022500=1980-01-01/2014-12-31"``: the record
    each file delivered, so that the validation can tell a missing value inside a record
    from the padding outside it (a netCDF-safe attribute that survives basin selection)."""
    return " ".join(f"{k}={pd.Timestamp(a).date()}/{pd.Timestamp(b).date()}" for k, (a, b) in spans.items())


def decode_spans(text) -> dict[str, tuple[np.datetime64, np.datetime64]]:
    """Inverse of :func:`encode_spans`."""
    out = {}
    for item in str(text or "").split():
        key, _, span = item.rpartition("=")
        first, _, last = span.partition("/")
        if key and first and last:
            out[key] = (np.datetime64(first, "D"), np.datetime64(last, "D"))
    return out


def add_note(ds: xr.Dataset, note: str) -> None:
    """Append a line to ``ds.attrs["data_notes"]``; :func:`~difhydro.data.validation.validate`
    copies these notes into its report, so that nothing a reader decided goes unreported."""
    old = ds.attrs.get("data_notes", "")
    ds.attrs["data_notes"] = f"{old}\n{note}" if old else note


# -- line-level diagnosis -------------------------------------------------------------------


def is_number(token: str) -> bool:
    """``float(token)`` works (``nan`` and ``inf`` included, digit separators not)."""
    if "_" in token:
        return False
    try:
        float(token)
    except ValueError:
        return False
    return True


def _fields(k: int) -> str:
    return f"{k} field" if k == 1 else f"{k} fields"


_OTHER_DELIMITERS = {",": "','", ";": "';'", "\t": "tabs", "|": "'|'", " ": "spaces"}


def _delimiter_hint(line: str, expected: str, n: int | None = None) -> str:
    """A hint when ``line`` holds another delimiter that explains its field count.

    With ``n`` (the expected number of fields): splitting on the expected delimiter and
    the other one together gives ``n`` fields. Without: the line does not split on the
    expected delimiter at all but does on the other one (a header line).
    """
    # an empty last field is data (a missing value), so only whitespace files are stripped
    line = line.strip() if expected == "whitespace" else line.rstrip("\r\n")

    def split(text, delims):
        for d in delims[1:]:
            text = text.replace(d, delims[0])
        if delims[0] != " ":
            return text.split(delims[0])
        if expected == "whitespace":
            return text.split()
        # spaces instead of a one-character delimiter: one space per field break (an empty
        # last field stays a field), unless aligned columns pad with several
        exact = text.split(" ")
        return exact if n is not None and len(exact) == n else text.split()

    mine = (" ", "\t") if expected == "whitespace" else (expected,)
    for delim, name in _OTHER_DELIMITERS.items():
        if delim in mine or delim not in line:
            continue
        if n is None:
            ok = len(split(line, mine)) == 1 and len(split(line, (delim,))) > 1
        else:
            ok = len(split(line, mine + (delim,) if mine[0] == " " else (delim,) + mine)) == n
        if ok:
            want = "whitespace" if expected == "whitespace" else repr(expected)
            return f"; the line is separated by {name}, not {want} (wrong delimiter?)"
    return ""


def locate_bad_line(
    path,
    basin: str | None,
    lines: Sequence[str],
    *,
    first_line: int,
    columns: Sequence[str],
    numeric: Sequence[int],
    delimiter: str = "whitespace",
    missing: Sequence[str] = (),
) -> DataFileError | None:
    """The first malformed data line of ``lines`` as a :class:`DataFileError`, or ``None``.

    The slow path, run only after a fast parse failed or looked suspicious. ``lines`` are
    the data lines (``lines[0]`` is line ``first_line`` of the file). A line is malformed
    when it is empty before the end of the file, has another number of fields than
    ``columns`` (wrong delimiter and cut last line get their own hint), or holds a
    non-numeric value in a ``numeric`` field (tokens in ``missing`` are allowed there).
    """
    n = len(columns)
    last = len(lines) - 1
    while last >= 0 and not lines[last].strip():
        last -= 1
    missing = set(missing)
    if delimiter == "whitespace":
        rows = (line.split() for line in lines[: last + 1])
    else:
        rows = csv.reader(lines[: last + 1], delimiter=delimiter)
    for k, fields in enumerate(rows):
        lineno = first_line + k
        text = lines[k].strip()
        if not text:
            return DataFileError(
                f"line {lineno} is empty (blank lines are allowed only at the end of the file)", path, basin, line=lineno
            )
        if len(fields) != n:
            hint = _delimiter_hint(lines[k], delimiter, n) if len(fields) < n else ""
            if not hint and k == last and len(fields) < n:
                hint = "; the last line is incomplete: the file looks truncated"
            return DataFileError(
                f"line {lineno} has {_fields(len(fields))}, expected {n}{hint}: {text[:120]!r}", path, basin, line=lineno
            )
        for j in numeric:
            token = fields[j].strip()
            if token in missing:
                continue
            if not is_number(token):
                return DataFileError(
                    f"line {lineno} has a non-numeric value {token!r} in column '{columns[j]}': {text[:120]!r}",
                    path,
                    basin,
                    line=lineno,
                    column=columns[j],
                )
    return None


def read_text(path) -> str:
    """The file as text (UTF-8, an undecodable byte becomes U+FFFD; a BOM is dropped)."""
    text = Path(path).read_bytes().decode("utf-8", errors="replace")
    return text.removeprefix("\ufeff")


def row_dates(year, month, day, path, basin: str | None, first_line: int) -> pd.DatetimeIndex:
    """Dates from year / month / day columns; an impossible date names its line."""
    frame = pd.DataFrame({"year": year, "month": month, "day": day}).astype(np.float64)
    arr = frame.to_numpy()
    whole = np.all(np.isfinite(arr) & (arr == np.round(arr)), axis=1)
    clean = arr.copy()
    clean[~whole] = np.nan
    dates = pd.to_datetime(pd.DataFrame(clean, columns=["year", "month", "day"]), errors="coerce")
    bad = np.flatnonzero(dates.isna().to_numpy())
    if bad.size:
        i = int(bad[0])
        y, m, d = (frame[c].iloc[i] for c in ("year", "month", "day"))
        raise DataFileError(
            f"line {first_line + i} has an invalid date (year {y:g}, month {m:g}, day {d:g})",
            path,
            basin,
            line=first_line + i,
        )
    return pd.DatetimeIndex(dates)


def read_csv_records(
    path,
    basin: str | None,
    *,
    time_column: str = "date",
    required: Sequence[str] = (),
    delimiter: str = ",",
    date_format: str | None = "%Y-%m-%d",
    missing: Sequence[str] = ("", "NaN", "nan", "NA"),
    final_newline: bool = False,
) -> tuple[pd.DatetimeIndex, dict[str, np.ndarray], dict[str, int]]:
    """Read a daily CSV (one header line, then one row per day) without silent repairs.

    Returns ``(dates, values, sentinels)``: ``values`` maps every other column to float64
    (cells in ``missing`` and :data:`SENTINELS` are NaN), ``sentinels`` how many
    sentinel codes each column held.

    Raises :class:`DataFileError` naming file and 1-based line for: an empty file, a
    header that is data (header line missing) or uses another delimiter, a missing
    ``time_column`` or ``required`` column, a repeated column name, an empty line before
    the end, a line with another number of fields (a cut last line is called truncated),
    a non-numeric cell (with its column), an invalid date, and duplicated, unordered or
    missing days (:func:`check_daily`). With ``final_newline`` (machine-written formats
    such as Caravan) a file whose last line lacks its line break is called cut mid-line,
    even when the cut left every field in place (``...,1.2`` cut to ``...,1.``).
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    body = raw.rstrip()
    if not body:
        raise DataFileError("is empty", path, basin, line=1)
    n_lines = body.count(b"\n") + 1
    header_line = body.partition(b"\n")[0].decode("utf-8", errors="replace").rstrip("\r")
    columns = [c.strip().strip('"') for c in next(csv.reader([header_line], delimiter=delimiter))]
    if time_column not in columns:
        first = columns[0].strip()
        if len(columns) == 1 and _delimiter_hint(header_line, delimiter):
            raise DataFileError(
                f"line 1 (the header) {_delimiter_hint(header_line, delimiter)[2:]}: {header_line[:120]!r}",
                path, basin, line=1,
            )
        if not pd.isna(pd.to_datetime(first, format=date_format, errors="coerce")):
            raise DataFileError(
                f"line 1 holds data ({header_line[:60]!r}), not the column header: header line missing?",
                path, basin, line=1,
            )
        raise DataFileError(f"line 1 has no '{time_column}' column; columns are {columns}", path, basin, line=1)
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise DataFileError(f"line 1 repeats column name(s) {repeated}", path, basin, line=1)
    absent = [c for c in required if c not in columns]
    if absent:
        raise DataFileError(f"column(s) {absent} missing; file has {columns}", path, basin, line=1)
    if n_lines < 2:
        raise DataFileError("contains no data rows", path, basin, line=1)
    numeric = [j for j, c in enumerate(columns) if c != time_column]
    if final_newline and not raw.endswith((b"\n", b"\r")):
        last_line = body.rpartition(b"\n")[2].decode("utf-8", errors="replace")
        raise DataFileError(
            f"line {n_lines} (the last line) does not end with a line break: the file looks cut mid-line "
            f"(truncated): {last_line[:120]!r}",
            path, basin, line=n_lines,
        )

    def diagnose():
        return locate_bad_line(
            path, basin, [l.rstrip("\r") for l in body.decode("utf-8", errors="replace").split("\n")[1:]],
            first_line=2, columns=columns,
            numeric=numeric, delimiter=delimiter, missing=missing,
        )

    # cheap check of the field count: every line holds len(columns) - 1 delimiters
    if body.count(delimiter.encode()) != (len(columns) - 1) * n_lines:
        err = diagnose()
        if err is not None:
            raise err
    try:
        table = pd.read_csv(
            io.BytesIO(body + b"\n"), sep=delimiter, encoding="utf-8", encoding_errors="replace", dtype={time_column: str}, keep_default_na=False,
            na_values=list(missing), skip_blank_lines=False, header=0, names=columns,
        )
    except (ValueError, pd.errors.ParserError) as err:
        raise (diagnose() or DataFileError(f"cannot be parsed as CSV: {err}", path, basin)) from None
    if len(table) != n_lines - 1:
        raise diagnose() or DataFileError(f"{len(table)} rows parsed from {n_lines - 1} lines", path, basin)
    values: dict[str, np.ndarray] = {}
    sentinels: dict[str, int] = {}
    for col in columns:
        if col == time_column:
            continue
        series = table[col]
        if series.dtype == object:
            numbers = pd.to_numeric(series, errors="coerce")
            bad = np.flatnonzero((numbers.isna() & series.notna()).to_numpy())
            if bad.size:
                i = int(bad[0])
                raise DataFileError(
                    f"line {i + 2} has a non-numeric value {series.iloc[i]!r} in column '{col}'",
                    path, basin, line=i + 2, column=col,
                )
            series = numbers
        values[col], sentinels[col] = mask_sentinels(series.to_numpy(np.float64))
    raw_dates = table[time_column]
    fmt = date_format if date_format is not None else "ISO8601"
    parsed = pd.to_datetime(raw_dates, format=fmt, errors="coerce")
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if bad.size:
        i = int(bad[0])
        if pd.isna(raw_dates.iloc[i]):  # an empty line, or a row without its date
            raise diagnose() or DataFileError(f"line {i + 2} has no date", path, basin, line=i + 2, column=time_column)
        raise DataFileError(
            f"line {i + 2} has an invalid date {raw_dates.iloc[i]!r} in column '{time_column}'"
            + (f" (expected {date_format})" if date_format else ""),
            path, basin, line=i + 2, column=time_column,
        )
    dates = pd.DatetimeIndex(parsed)
    stamps = dates.values
    off_midnight = stamps != stamps.astype("datetime64[D]").astype(stamps.dtype)
    if off_midnight.any():
        i = int(np.flatnonzero(off_midnight)[0])
        raise DataFileError(f"line {i + 2} has a time of day ({raw_dates.iloc[i]!r}); records must be daily",
                            path, basin, line=i + 2, column=time_column)
    check_daily(dates, path, basin, first_line=2)
    return dates, values, sentinels


def check_table_lines(path, delimiter: str = ",") -> None:
    """Raise :class:`DataFileError` (file, line) unless every line of a small table (an
    attribute table) has as many fields as its header; quoted fields are honoured."""
    text = read_text(path).rstrip()
    if not text:
        raise DataFileError("is empty", path, line=1)
    lines = text.split("\n")
    reader = csv.reader(lines, delimiter=delimiter)
    header = next(reader)
    if len(header) == 1 and _delimiter_hint(lines[0], delimiter):
        raise DataFileError(f"line 1 (the header) {_delimiter_hint(lines[0], delimiter)[2:]}", path, line=1)
    for fields in reader:
        if len(fields) != len(header):
            lineno = reader.line_num
            raw = lines[lineno - 1].strip() if lineno - 1 < len(lines) else ""
            if not raw:
                raise DataFileError(f"line {lineno} is empty (blank lines are allowed only at the end)", path, line=lineno)
            hint = _delimiter_hint(raw, delimiter, len(header)) if len(fields) < len(header) else ""
            raise DataFileError(
                f"line {lineno} has {_fields(len(fields))}, expected {len(header)}{hint}: {raw[:120]!r}", path, line=lineno
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


#: units of the gauge coordinates every reader stores on ``(basin,)`` (checked by
#: :mod:`~difhydro.data.plausibility`)
COORDINATE_ATTRS = {
    "gauge_lat": {"units": "degrees_north", "long_name": "gauge latitude"},
    "gauge_lon": {"units": "degrees_east", "long_name": "gauge longitude"},
}


def set_units(ds: xr.Dataset, extra: Mapping[str, Mapping[str, str]] | None = None) -> xr.Dataset:
    """Attach :data:`VARIABLE_ATTRS`, :data:`COORDINATE_ATTRS` (and ``extra``) to the
    variables present in ``ds``."""
    table = {**VARIABLE_ATTRS, **COORDINATE_ATTRS, **(extra or {})}
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
    bad = ~np.isfinite(lat) | (np.abs(lat) > 90)
    if bad.any():
        ids = np.asarray(ds["basin"].values).astype(str) if "basin" in ds.coords else np.arange(lat.size).astype(str)
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"latitude of basin {ids[i]} is {lat[i]:g}, not finite degrees in [-90, 90] ({int(bad.sum())} basin(s); "
            "latitude and longitude swapped?); day length needs the latitude"
        )
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

