"""CAMELS-US reader for the original directory layout (Newman et al. 2015; Addor et al. 2017).

Layout under ``root`` (``basin_dataset_public_v1p2`` + ``camels_attributes_v2.0``)::

    basin_mean_forcing/{daymet,maurer,maurer_extended,nldas}/[<HUC>/]<gauge>_lump_*_forcing_leap.txt
    usgs_streamflow/[<HUC>/]<gauge>_streamflow_qc.txt
    camels_attributes_v2.0/camels_{clim,geol,hydro,name,soil,topo,vege}.txt

HUC folders are optional: files are found by name anywhere below the product folder.
"""

from __future__ import annotations

import functools

import io
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from .validation import validated
from ._common import (DataFileError, _delimiter_hint, add_note, check_daily, check_table_lines, daily_axis,
    encode_counts, encode_spans, is_number, join_attribute_tables, locate_bad_line, mask_sentinels,
    normalise_basin_ids, options_key, place_on_axis, read_cached, read_text, row_dates, set_units,
    source_fingerprint, write_cached)

__all__ = [
    "FORCING_PRODUCTS",
    "CFS_TO_M3S",
    "QC_FLAGS",
    "load_camels_us",
    "read_forcing_file",
    "read_streamflow_file",
    "read_camels_attributes",
    "cfs_to_mm_per_day",
    "find_camels_files",
]

FORCING_PRODUCTS = ("daymet", "maurer", "maurer_extended", "nldas")
CFS_TO_M3S = 0.0283168466  # 1 ft3 s-1 in m3 s-1
# QC flags of the USGS files, stored as small integer codes (CF flag_values / flag_meanings).
QC_FLAGS = {"none": 0, "A": 1, "A:e": 2, "M": 3}

_DATE_COLUMNS = ("year", "mnth", "day", "hr")
_FORCING_COLUMNS = {
    "dayl(s)": "day_length",
    "prcp(mm/day)": "precipitation",
    "srad(w/m2)": "srad",
    "swe(mm)": "swe",
    "tmax(c)": "tmax",
    "tmin(c)": "tmin",
    "vp(pa)": "vp",
}
_REQUIRED_FORCING = ("dayl(s)", "prcp(mm/day)", "tmax(c)", "tmin(c)")
_ATTRIBUTE_DIR = "camels_attributes_v2.0"


# -- finding files ------------------------------------------------------------------------


def _index_by_gauge(folder: Path, pattern: str) -> dict[str, Path]:
    """``gauge -> file`` for every file below ``folder`` matching ``pattern`` (any depth)."""
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob(pattern)):
        gauge = path.name.split("_")[0]
        if gauge in found:
            raise DataFileError(f"two files for one basin: {found[gauge]} and {path}", path, gauge)
        found[gauge] = path
    return found


def find_camels_files(root, forcing: str = "daymet") -> tuple[dict[str, Path], dict[str, Path]]:
    """``(forcing_files, streamflow_files)``, each ``gauge -> path``, found under ``root``."""
    root = Path(root)
    if forcing not in FORCING_PRODUCTS:
        raise ValueError(f"forcing must be one of {FORCING_PRODUCTS}, got {forcing!r}")
    forcing_dir = root / "basin_mean_forcing" / forcing
    if not forcing_dir.is_dir():
        raise FileNotFoundError(f"CAMELS-US forcing folder not found: {forcing_dir}")
    flow_dir = root / "usgs_streamflow"
    forcing_files = _index_by_gauge(forcing_dir, "*_lump_*_forcing_leap.txt")
    flow_files = _index_by_gauge(flow_dir, "*_streamflow_qc.txt") if flow_dir.is_dir() else {}
    return forcing_files, flow_files


# -- parsing ------------------------------------------------------------------------------


_HEADER_LINES = (
    ("latitude", "the basin latitude (deg N)", -90.0, 90.0),
    ("elevation", "the mean elevation (m)", -500.0, 9000.0),
    ("area", "the catchment area (m2)", 0.0, np.inf),
)


def _read_header(path: Path, basin: str, lines: list[str]) -> tuple[dict[str, float], list[str]]:
    """The three header lines (one number each) and the column header of a forcing file."""
    header: dict[str, float] = {}
    for k, (key, what, lo, hi) in enumerate(_HEADER_LINES):
        lineno = k + 1
        line = lines[k].strip() if k < len(lines) else ""
        fields = line.split()
        if len(fields) != 1 or not is_number(fields[0]):
            found = f"found {line[:80]!r}" if line else "found an empty line"
            raise DataFileError(
                f"line {lineno} must hold {what} alone, {found}; a CAMELS forcing file starts with three header "
                "lines (latitude, elevation, area) and the column header 'Year Mnth Day Hr ...' (header line missing?)",
                path, basin, line=lineno,
            )
        value = float(fields[0])
        if not (lo < value <= hi if key == "area" else lo <= value <= hi):
            rule = "must be positive" if key == "area" else f"must lie in [{lo:g}, {hi:g}]"
            raise DataFileError(
                f"line {lineno}: header {key} {rule}, got {value:g} (a header line missing or out of order?)",
                path, basin, line=lineno,
            )
        header[key] = value
    head = lines[3] if len(lines) > 3 else ""
    columns = [c.lower() for c in head.split()]
    if tuple(columns[:4]) != _DATE_COLUMNS:
        tokens = head.split()
        if len(tokens) >= 4 and all(is_number(t) for t in tokens[:4]):
            hint = " (the column header line is missing: line 4 holds data)"
        else:
            hint = _delimiter_hint(head, "whitespace")
        raise DataFileError(
            f"line 4 must start with 'Year Mnth Day Hr', got {head.strip()[:120]!r}{hint}", path, basin, line=4
        )
    missing = [c for c in _REQUIRED_FORCING if c not in columns]
    if missing:
        raise DataFileError(f"column(s) {missing} missing; header has {columns}", path, basin, line=4)
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise DataFileError(f"line 4 repeats column name(s) {repeated}", path, basin, line=4)
    return header, columns


def _parse_whitespace_table(path: Path, basin: str, lines: list[str], first_line: int, columns: list[str],
                            numeric: list[int], dtype) -> pd.DataFrame:
    """Fast whitespace parse of ``lines`` with a line-exact diagnosis of any failure.

    Trailing blank lines are dropped; every other line must parse, so that row ``i`` is
    file line ``first_line + i``.
    """
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    if not lines:
        raise DataFileError("contains no data rows", path, basin, line=first_line)

    def diagnose():
        return locate_bad_line(path, basin, lines, first_line=first_line, columns=columns, numeric=numeric)

    try:
        table = pd.read_csv(io.StringIO("\n".join(lines)), sep=r"\s+", header=None, names=list(range(len(columns))),
                            dtype=dtype, skip_blank_lines=True)
    except (ValueError, pd.errors.ParserError) as err:
        raise (diagnose() or DataFileError(f"cannot be parsed: {err}", path, basin)) from None
    if len(table) != len(lines) or table.isna().to_numpy().any():
        # a short line, a blank line, or a literal NaN; only the first two are errors
        err = diagnose()
        if err is not None:
            raise err
        if len(table) != len(lines):
            raise DataFileError(f"{len(table)} rows parsed from {len(lines)} lines", path, basin)
    return table


def read_forcing_file(
    path, basin: str | None = None, *, sentinels: dict[str, int] | None = None
) -> tuple[dict[str, float], pd.DatetimeIndex, dict[str, np.ndarray]]:
    """Read one ``*_lump_*_forcing_leap.txt`` file.

    Returns:
        ``(header, dates, values)``: header ``{"latitude": deg N, "elevation": m,
        "area": m2}`` (the three header lines), the daily dates, and ``name -> [time]``
        float64 arrays named as in :data:`VARIABLE_ATTRS` (``day_length`` in h).
        Sentinel codes (-999, -9999, any spelling such as ``-999.00``) are NaN; if
        ``sentinels`` is a dict it receives ``name -> number of sentinels``.

    Raises:
        DataFileError: a header line missing or malformed (latitude outside [-90, 90],
            area not positive), a missing or repeated column, a data line with another
            number of fields (wrong delimiter, cut last line) or a non-numeric value, an
            invalid date, a duplicated, unordered or missing day. The message names the
            file, the basin and the 1-based line (and the column where known).
    """
    path = Path(path)
    basin = basin or path.name.split("_")[0]
    if not path.is_file():
        raise FileNotFoundError(f"basin {basin}: forcing file not found: {path}")
    lines = read_text(path).split("\n")
    header, columns = _read_header(path, basin, lines)
    table = _parse_whitespace_table(path, basin, lines[4:], 5, columns, list(range(len(columns))), np.float64)
    data = table.to_numpy()
    dates = row_dates(data[:, 0], data[:, 1], data[:, 2], path, basin, first_line=5)
    check_daily(dates, path, basin, first_line=5)
    values = {}
    for i, col in enumerate(columns[4:], start=4):
        name = _FORCING_COLUMNS.get(col, col)
        values[name], n = mask_sentinels(data[:, i])
        if sentinels is not None:
            sentinels[name] = n
    values["day_length"] = values["day_length"] / 3600.0  # s -> h
    return header, dates, values


def read_streamflow_file(
    path, basin: str | None = None, *, sentinels: dict[str, int] | None = None
) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray]:
    """Read one ``*_streamflow_qc.txt`` file (``gauge year month day Q flag`` per line).

    Returns:
        ``(dates, q_cfs, flags)``: discharge in ft3 s-1 with the sentinels ``-999`` /
        ``-9999`` replaced by NaN (their number goes to ``sentinels["streamflow"]`` when a
        dict is given), and the QC flags as integer codes of :data:`QC_FLAGS`.

    Raises:
        DataFileError: naming file, basin and line: another number of fields, a
            non-numeric value, an invalid, duplicated, unordered or missing day, another
            gauge id, a negative discharge other than a sentinel, an unknown QC flag.
    """
    path = Path(path)
    basin = basin or path.name.split("_")[0]
    if not path.is_file():
        raise FileNotFoundError(f"basin {basin}: streamflow file not found: {path}")
    lines = read_text(path).split("\n")
    table = _parse_whitespace_table(
        path, basin, lines, 1, ["gauge", "year", "month", "day", "q", "flag"], [1, 2, 3, 4],
        {0: str, 1: np.float64, 2: np.float64, 3: np.float64, 4: np.float64, 5: str},
    )
    table.columns = ["gauge", "year", "month", "day", "q", "flag"]
    other = np.flatnonzero((table["gauge"] != basin).to_numpy())
    if other.size:
        gauges = list(dict.fromkeys(table["gauge"]))
        raise DataFileError(
            f"line {other[0] + 1}: gauge column holds {gauges[:3]}, expected only {basin}", path, basin, line=int(other[0]) + 1
        )
    dates = row_dates(table["year"].values, table["month"].values, table["day"].values, path, basin, first_line=1)
    check_daily(dates, path, basin, first_line=1)
    q, n = mask_sentinels(table["q"].to_numpy(dtype=np.float64))
    if sentinels is not None:
        sentinels["streamflow"] = n
    negative = np.flatnonzero(q < 0)
    if negative.size:
        i = int(negative[0])
        raise DataFileError(
            f"line {i + 1} has a negative discharge {q[i]:g} (only -999 / -9999 mark missing values)",
            path, basin, line=i + 1, column="q",
        )
    unknown_rows = np.flatnonzero(~table["flag"].isin(list(QC_FLAGS)).to_numpy())
    if unknown_rows.size:
        unknown = sorted(set(table["flag"].iloc[unknown_rows]))
        i = int(unknown_rows[0])
        raise DataFileError(
            f"unknown QC flag(s) {unknown}; known: {list(QC_FLAGS)[1:]} (first on line {i + 1})",
            path, basin, line=i + 1, column="flag",
        )
    flags = table["flag"].map(QC_FLAGS).to_numpy(dtype=np.int8)
    return dates, q, flags


def cfs_to_mm_per_day(q_cfs, area_m2):
    """Discharge ft3 s-1 -> runoff depth mm d-1: ``Q * 0.0283168466 * 86400 * 1000 / A``."""
    return np.asarray(q_cfs, dtype=np.float64) * (CFS_TO_M3S * 86400.0 * 1000.0) / np.asarray(area_m2, dtype=np.float64)


def _read_attribute_table(path: Path) -> pd.DataFrame:
    check_table_lines(path, ";")  # a cut or mis-delimited line names its line, never loads as NaN
    try:
        table = pd.read_csv(path, sep=";", dtype={"gauge_id": str, "huc_02": str}, na_values=["NA", "NaN", ""])
    except (ValueError, pd.errors.ParserError) as err:
        raise DataFileError(f"cannot be parsed as a ';'-separated table: {err}", path) from None
    if "gauge_id" not in table.columns:
        raise DataFileError(f"has no 'gauge_id' column; columns are {list(table.columns)}", path)
    table["gauge_id"] = table["gauge_id"].str.strip()
    if table["gauge_id"].duplicated().any():
        dup = table.loc[table["gauge_id"].duplicated(), "gauge_id"].tolist()[:3]
        line = int(np.flatnonzero(table["gauge_id"].duplicated().to_numpy())[0]) + 2
        raise DataFileError(f"duplicate gauge_id(s) {dup} (first repeat on line {line})", path, line=line)
    for col in table.columns:
        if table[col].dtype == object or pd.api.types.is_string_dtype(table[col]):
            table[col] = table[col].astype(str).str.strip() if col != "gauge_id" else table[col]
    return table.set_index("gauge_id")


def read_camels_attributes(root, basins: list[str] | None = None) -> pd.DataFrame:
    """All ``camels_attributes_v2.0/camels_*.txt`` tables joined on ``gauge_id``.

    Numeric columns are float, text columns (``huc_02``, ``gauge_name``, geology and
    land-cover classes, seasonal timing) stay strings. With ``basins`` given, every table
    must contain every basin; otherwise a :class:`DataFileError` names table and basin.
    """
    folder = Path(root) / _ATTRIBUTE_DIR
    files = sorted(folder.glob("camels_*.txt"))
    if not files:
        raise FileNotFoundError(f"no camels_*.txt attribute tables in {folder}")
    return join_attribute_tables(((path, _read_attribute_table(path)) for path in files), basins)


# -- the loader ---------------------------------------------------------------------------


def load_camels_us(
    root,
    basins=None,
    forcing: str = "daymet",
    start=None,
    end=None,
    *,
    attributes: bool = True,
    missing_streamflow: str = "raise",
    cache_dir=None,
    validate: bool = True,
    policies=None,
    required_attributes=None,
) -> xr.Dataset:
    """Load CAMELS-US basins from the original layout into one ``xarray.Dataset``.

    Args:
        root: folder holding ``basin_mean_forcing``, ``usgs_streamflow`` and
            ``camels_attributes_v2.0``.
        basins: gauge ids (8-character strings; integers are zero-padded) or ``None`` for
            every basin that has a file of the chosen forcing product.
        forcing: ``"daymet"``, ``"maurer"``, ``"maurer_extended"`` or ``"nldas"``.
        start, end: first and last day (inclusive); default: the union of all records.
        attributes: join the static attribute tables (required to exist when ``True``).
        missing_streamflow: a basin with forcing but no streamflow file either ``"raise"``
            (default: :class:`FileNotFoundError` naming the basin and the expected file)
            or gets an all-NaN ``streamflow`` (``"nan"``; listed in
            ``attrs["basins_without_streamflow"]``).
        cache_dir: if given, the result is stored there as netCDF and re-used while the
            options and every source file (path, size, mtime) stay the same. The cache
            holds the data as read; the validation runs on every load.
        validate: run :func:`difhydro.data.validation.validate` over the loaded data
            (units, plausible ranges, sentinels, +-inf, missing values, attributes) with
            ``policies`` and ``required_attributes``; the report is kept in
            ``attrs["validation_report"]`` (read it back with
            :meth:`~difhydro.data.validation.ValidationReport.from_dataset`).
            ``False`` returns the data as read (sentinels already NaN and counted).

    Returns:
        Dataset on dims ``(basin, time)`` (daily ``time``): ``precipitation`` (mm d-1),
        ``tmax``, ``tmin``, ``temperature`` = (tmax + tmin) / 2 (deg C), ``day_length``
        (h, from ``dayl(s)``), ``srad`` (W m-2), ``vp`` (Pa), ``swe`` (mm),
        ``streamflow`` (mm d-1 = cfs x 0.0283168466 x 86400 x 1000 / header area),
        ``streamflow_qc`` (int8 codes, ``attrs`` flag_meanings); on ``(basin,)``:
        ``forcing_latitude``, ``forcing_elevation``, ``forcing_area`` (the forcing-file
        header, m2) and every CAMELS attribute. Days outside a basin's record are NaN
        (QC code 0), as are ``-999`` discharges. Units are in each variable's ``attrs``.
        NLDAS files carry the daily mean in both ``tmax`` and ``tmin`` (a property of
        the product): ``temperature`` is then that mean and the diurnal range is 0;
        such basins are listed in ``attrs["tmax_equals_tmin"]``.

    Raises:
        FileNotFoundError: missing folder, forcing, streamflow or attribute file (names
            file and basin).
        DataFileError (a ValueError): unknown basin id, malformed line, date gap, missing
            column, attribute table without the basin; the message names file, basin and
            line.
        DataValidationError (a ValueError): the validation failed under an ``error``
            policy (by default: any missing, sentinel, infinite or implausible forcing
            value inside a basin's record, or a required attribute that is missing).
    """
    if missing_streamflow not in ("raise", "nan"):
        raise ValueError(f"missing_streamflow must be 'raise' or 'nan', got {missing_streamflow!r}")
    root = Path(root)
    forcing_files, flow_files = find_camels_files(root, forcing)
    basins = normalise_basin_ids(basins)
    if basins is None:
        basins = sorted(forcing_files)
        if not basins:
            raise FileNotFoundError(f"no *_lump_*_forcing_leap.txt files below {root / 'basin_mean_forcing' / forcing}")
    attr_files = sorted((root / _ATTRIBUTE_DIR).glob("camels_*.txt")) if attributes else []
    name_file = root / _ATTRIBUTE_DIR / "camels_name.txt"
    if attributes and name_file.is_file():
        known = set(_read_attribute_table(name_file).index)
        unknown = [b for b in basins if b not in known]
        if unknown:
            raise DataFileError(f"unknown CAMELS basin id(s) {unknown}", name_file, unknown[0])
    for b in basins:
        if b not in forcing_files:
            raise FileNotFoundError(
                f"basin {b}: no {forcing} forcing file {b}_lump_*_forcing_leap.txt below "
                f"{root / 'basin_mean_forcing' / forcing}"
            )
        if b not in flow_files and missing_streamflow == "raise":
            raise FileNotFoundError(
                f"basin {b}: streamflow file {b}_streamflow_qc.txt not found below {root / 'usgs_streamflow'} "
                "(pass missing_streamflow='nan' to load its forcing with NaN streamflow)"
            )
    sources = [forcing_files[b] for b in basins] + [flow_files[b] for b in basins if b in flow_files] + attr_files
    key = options_key("camels_us", basins=basins, forcing=forcing, start=start, end=end,
                      attributes=attributes, missing_streamflow=missing_streamflow, root=str(root.resolve()),
                      reader=2)
    fingerprint = source_fingerprint(sources) if cache_dir is not None else ""

    finish = functools.partial(validated, enabled=validate, policies=policies,
                               required_attributes=required_attributes, source=f"CAMELS-US {forcing} ({root})")

    cached = read_cached(cache_dir, key, fingerprint)
    if cached is not None:
        return finish(cached)

    static = read_camels_attributes(root, basins) if attributes else None
    ds = _assemble(basins, forcing_files, flow_files, start, end)
    if static is not None:
        for col in static.columns:
            values = static[col].to_numpy()
            if pd.api.types.is_numeric_dtype(static[col]):
                values = values.astype(np.float32)
            else:
                values = values.astype(str)
            ds[col] = ("basin", values)
        set_units(ds)  # gauge_lat / gauge_lon in degrees
    ds.attrs.update(
        title=f"CAMELS-US ({forcing} forcing, USGS streamflow)",
        source=str(root),
        forcing_product=forcing,
        references="Newman et al. 2015, doi:10.5194/hess-19-209-2015; Addor et al. 2017, doi:10.5194/hess-21-5293-2017",
        missing_streamflow_policy=missing_streamflow,
    )
    write_cached(ds, cache_dir, key, fingerprint)
    return finish(ds)


def _assemble(basins, forcing_files, flow_files, start, end) -> xr.Dataset:
    forcings, flows, counts = [], [], []
    for b in basins:
        found: dict[str, int] = {}
        forcings.append(read_forcing_file(forcing_files[b], b, sentinels=found))
        flows.append(read_streamflow_file(flow_files[b], b, sentinels=found) if b in flow_files else None)
        counts.append(found)
    ranges = [(f[1][0], f[1][-1]) for f in forcings] + [(q[0][0], q[0][-1]) for q in flows if q is not None]
    axis = daily_axis(ranges, start, end)
    names = [n for n in forcings[0][2] if all(n in f[2] for f in forcings)]
    dropped = sorted({n for f in forcings for n in f[2]} - set(names))
    data = {n: np.empty((len(basins), len(axis)), np.float32) for n in names}
    q_mm = np.full((len(basins), len(axis)), np.nan, np.float32)
    qc = np.zeros((len(basins), len(axis)), np.int8)
    for i, ((header, dates, values), flow) in enumerate(zip(forcings, flows)):
        for n in names:
            data[n][i] = place_on_axis(values[n], dates, axis)
        if flow is not None:
            q_dates, q_cfs, flags = flow
            q_mm[i] = place_on_axis(cfs_to_mm_per_day(q_cfs, header["area"]), q_dates, axis)
            qc[i] = place_on_axis(flags, q_dates, axis, fill=0)
    dims = ("basin", "time")
    ds = xr.Dataset({n: (dims, v) for n, v in data.items()}, coords={"basin": np.array(basins, dtype=str), "time": axis})
    ds["temperature"] = (dims, 0.5 * (data["tmax"] + data["tmin"]))
    ds["streamflow"] = (dims, q_mm)
    ds["streamflow_qc"] = (dims, qc)
    ds["streamflow_qc"].attrs.update(
        flag_values=np.array(list(QC_FLAGS.values()), np.int8),
        flag_meanings=" ".join(QC_FLAGS),
        long_name="USGS quality flag (A approved, A:e approved estimated, M missing; none = no record)",
    )
    for key, units, long_name in (
        ("latitude", "degrees_north", "latitude (forcing-file header)"),
        ("elevation", "m", "mean elevation (forcing-file header)"),
        ("area", "m2", "catchment area (forcing-file header), used to convert streamflow"),
    ):
        ds[f"forcing_{key}"] = ("basin", np.array([f[0][key] for f in forcings], np.float64))
        ds[f"forcing_{key}"].attrs.update(units=units, long_name=long_name)
    set_units(ds)
    ds["streamflow"].attrs["comment"] = "ft3 s-1 x 0.0283168466 x 86400 x 1000 / forcing_area; -999 and days without record are NaN"
    for n in names + ["streamflow"]:  # sentinel codes the reader turned into NaN, per basin
        ds[n].attrs["sentinel_counts"] = encode_counts({b: c.get(n, 0) for b, c in zip(basins, counts)})
    forcing_spans = encode_spans({b: (f[1][0], f[1][-1]) for b, f in zip(basins, forcings)})
    for n in names + ["temperature"]:  # the record of each file, for the validation
        ds[n].attrs["record"] = forcing_spans
    ds["streamflow"].attrs["record"] = encode_spans({b: (q[0][0], q[0][-1]) for b, q in zip(basins, flows) if q is not None})
    ds["temperature"].attrs["comment"] = "(tmax + tmin) / 2; NaN where either is missing (their sentinels are counted there)"
    same = [b for b, (_, _, v) in zip(basins, forcings) if np.array_equal(v["tmax"], v["tmin"], equal_nan=True)]
    ds.attrs["tmax_equals_tmin"] = " ".join(same)
    without = [b for b, f in zip(basins, flows) if f is None]
    ds.attrs["basins_without_streamflow"] = " ".join(without)
    if dropped:
        add_note(ds, f"forcing column(s) {dropped} are not in every file and were left out")
    if without:
        add_note(ds, f"{len(without)} basin(s) without a streamflow file (all-NaN streamflow): {' '.join(without)}")
    if same:
        add_note(ds, f"tmax equals tmin in {len(same)} basin(s) (NLDAS daily means); the diurnal range is 0")
    return ds
