"""Users' own data: one CSV or netCDF file per basin plus one attribute table.

Layout under ``root``::

    timeseries/<basin>.csv      one row per day: a date column and one column per variable
    timeseries/<basin>.nc       (or netCDF: one variable per column on a date / time dimension)
    attributes.csv              one row per basin: a ``basin`` (or ``gauge_id``) column and
                                one column per attribute (latitude for the day length)

The basin id is the file name without its suffix. Column names and units are mapped in
the call (or the experiment's config): ``variables`` maps the package's names
(:data:`~difhydro.data.validation.VARIABLES`) to the file's columns, ``units`` gives the
units each column is written in. A netCDF variable's own ``units`` attribute is read: it
stands in for a unit not configured, and one that contradicts the configured unit (after
normalising spellings: ``"m d-1"``, ``"m/day"`` and ``"m"`` are one depth rate) is an
error naming variable, file and both units. Values are converted to the package's units
(:func:`convert_units`). The basin's coordinates (``latitude`` / ``longitude`` attribute
columns) are stored as ``gauge_lat`` / ``gauge_lon`` in degrees, which the validation
checks for plausibility. Every step the readers of CAMELS and Caravan take applies
(sentinels -999 / -9999 become NaN and are counted, a malformed line raises a
:class:`~difhydro.data.DataFileError` naming file and line, the validation pass runs).

Worked example (a folder ``my_basins`` with ``timeseries/A1.csv``, ``timeseries/B2.csv``)::

    # timeseries/A1.csv                     # attributes.csv
    # date,P_m,T_K,Q_cms                    # basin,lat,area_km2,forest
    # 2001-01-01,0.0021,271.3,4.1           # A1,47.2,120.5,0.61
    # 2001-01-02,0.0,269.9,3.9              # B2,46.8,88.0,0.35
    from difhydro.data.folder import load_folder

    ds = load_folder(
        "my_basins",
        variables={"precipitation": "P_m", "temperature": "T_K", "streamflow": "Q_cms"},
        units={"precipitation": "m d-1", "temperature": "K", "streamflow": "m3 s-1"},
        area="area_km2",              # discharge -> mm d-1 needs the area (km2)
        latitude="lat",               # day length (FAO-56) from this attribute
        longitude="lon",              # optional; both stored as gauge_lat / gauge_lon
        required_attributes=["forest"],
    )
    # ds: precipitation (mm d-1), temperature (degC), streamflow (mm d-1), day_length (h)
    # on (basin, time); lat, area_km2, forest, gauge_lat, gauge_lon on (basin,); units in
    # each variable's attrs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from .validation import VARIABLES, validated
from ._common import (DataFileError, add_note, check_daily, check_table_lines, daily_axis, encode_counts,
    encode_spans, join_attribute_tables, mask_sentinels, place_on_axis, read_csv_records, set_units,
    with_day_length)
from .camels import CFS_TO_M3S

__all__ = ["UNIT_CONVERSIONS", "DISCHARGE_UNITS", "convert_units", "load_folder"]


def _norm(units: str) -> str:
    """Spelling-independent units: ``"mm/day"``, ``"mm d-1"``, ``"mm day^-1"`` compare equal."""
    u = str(units).strip().lower().replace("°", "deg").replace("^", "").replace("**", "").replace(" ", "")
    for long, short in (("/day", "/d"), ("day-1", "d-1"), ("/hour", "/h"), ("/hr", "/h"), ("hr-1", "h-1")):
        u = u.replace(long, short)
    for per in ("d", "h", "s"):
        u = u.replace(f"{per}-1", f"/{per}")
    u = u.replace("m-2", "/m2").replace("//", "/")
    return u


def _table(entries) -> dict[str, tuple[float, float]]:
    out = {}
    for aliases, scale, offset in entries:
        for a in aliases:
            out[_norm(a)] = (scale, offset)
    return out


_DEPTH_RATE = [  # -> mm d-1 (daily totals or daily-mean rates)
    (("mm d-1", "mm", "mm/d", "kg m-2 d-1", "kg/m2/d"), 1.0, 0.0),
    (("m d-1", "m", "m/d"), 1000.0, 0.0),
    (("cm d-1", "cm", "cm/d"), 10.0, 0.0),
    (("in d-1", "in", "inch", "inches", "in/d"), 25.4, 0.0),
    (("mm h-1", "mm/h"), 24.0, 0.0),  # a daily-mean rate
    (("mm s-1", "mm/s", "kg m-2 s-1", "kg/m2/s"), 86400.0, 0.0),  # a daily-mean flux (ERA5 style)
]
_DEPTH = [  # -> mm (storage, e.g. snow water equivalent)
    (("mm",), 1.0, 0.0), (("m",), 1000.0, 0.0), (("cm",), 10.0, 0.0), (("in", "inch", "inches"), 25.4, 0.0),
]

#: ``target units -> {normalised source units: (scale, offset)}``: ``value * scale + offset``.
#: The target units are those of :data:`~difhydro.data.validation.VARIABLES`.
UNIT_CONVERSIONS: dict[str, dict[str, tuple[float, float]]] = {
    "mm d-1": _table(_DEPTH_RATE),
    "mm": _table(_DEPTH),
    "degC": _table([
        (("degC", "C", "celsius", "deg C", "degrees_celsius", "degree_celsius"), 1.0, 0.0),
        (("K", "kelvin"), 1.0, -273.15),
        (("degF", "F", "fahrenheit"), 5.0 / 9.0, -32.0 * 5.0 / 9.0),
    ]),
    "h": _table([(("h", "hour", "hours"), 1.0, 0.0), (("s", "seconds"), 1.0 / 3600.0, 0.0),
                 (("min", "minutes"), 1.0 / 60.0, 0.0)]),
    "W m-2": _table([(("W m-2", "W/m2"), 1.0, 0.0), (("MJ m-2 d-1", "MJ/m2/d"), 1e6 / 86400.0, 0.0)]),
    "Pa": _table([(("Pa",), 1.0, 0.0), (("hPa", "mbar"), 100.0, 0.0), (("kPa",), 1000.0, 0.0)]),
}

#: Discharge units accepted for a ``mm d-1`` variable (streamflow) when an ``area`` is
#: given: the factor to m3 s-1.
DISCHARGE_UNITS: dict[str, float] = {
    _norm(u): f for u, f in (
        ("m3 s-1", 1.0), ("m3/s", 1.0), ("cms", 1.0), ("ft3 s-1", CFS_TO_M3S), ("ft3/s", CFS_TO_M3S),
        ("cfs", CFS_TO_M3S), ("l s-1", 1e-3), ("l/s", 1e-3),
    )
}


def convert_units(values, units: str, variable: str, area_m2=None) -> np.ndarray:
    """``values`` in ``units`` converted to the package's units of ``variable``.

    Handles the common cases only: depth rates (m, cm, inches, mm h-1, kg m-2 s-1 ->
    mm d-1), temperature (K, degF -> degC), day length (s -> h), radiation
    (MJ m-2 d-1 -> W m-2), vapour pressure (hPa, kPa -> Pa) and discharge (m3 s-1,
    ft3 s-1, l s-1 -> mm d-1), which needs ``area_m2``: for ``values`` ``[basin, time]``
    one area per basin ``[basin]`` (or a scalar).

    Raises:
        ValueError: units unknown for the variable (naming both and the known ones), or
            a discharge without an area.
    """

    spec = VARIABLES.get(variable)
    values = np.asarray(values, dtype=np.float64)
    if spec is None:
        raise ValueError(f"variable {variable!r} has no package units to convert to; known: {sorted(VARIABLES)}")
    target = spec.units
    table = UNIT_CONVERSIONS.get(target, {_norm(target): (1.0, 0.0)})
    key = _norm(units)
    if key in table:
        scale, offset = table[key]
        return values * scale + offset
    if target == "mm d-1" and key in DISCHARGE_UNITS:
        if area_m2 is None:
            raise ValueError(
                f"variable {variable!r}: {units!r} is a discharge; converting it to a depth ({target}) needs the "
                "catchment area: pass area='<attribute column in km2>' (or give the data in mm d-1)"
            )
        area = np.asarray(area_m2, dtype=np.float64)
        if not np.all(np.isfinite(area) & (area > 0)):
            raise ValueError(f"variable {variable!r}: catchment areas must be positive and finite, got {area}")
        area = area.reshape(area.shape + (1,) * (values.ndim - area.ndim))
        return values * DISCHARGE_UNITS[key] * 86400.0 * 1000.0 / area
    known = sorted({u for u in table}) + (sorted(DISCHARGE_UNITS) + ["(with area)"] if target == "mm d-1" else [])
    raise ValueError(f"variable {variable!r}: unknown units {units!r} (to {target}); known: {known}")


def _conversion(units: str, variable: str):
    """What ``units`` mean for ``variable``: its conversion to the package's units (two
    spellings with one conversion are the same units), else the normalised spelling."""
    spec = VARIABLES.get(variable)
    key = _norm(units)
    if spec is None:
        return ("as given", key)
    table = UNIT_CONVERSIONS.get(spec.units, {_norm(spec.units): (1.0, 0.0)})
    if key in table:
        return table[key]
    if spec.units == "mm d-1" and key in DISCHARGE_UNITS:
        return ("discharge", DISCHARGE_UNITS[key])
    return ("unknown", key)


def same_units(a: str, b: str, variable: str) -> bool:
    """``a`` and ``b`` denote the same units for ``variable`` (``"m d-1"`` == ``"m/day"``
    == ``"m"`` for a depth rate; ``"K"`` != ``"degC"``)."""
    return _conversion(a, variable) == _conversion(b, variable)


def _file_units(path: Path, basin: str, name: str, column: str, configured, attribute) -> str:
    """The units of ``column`` in one file: the configured units, checked against the
    file's ``units`` attribute (netCDF) when both exist, else whichever exists."""
    attribute = None if attribute is None or not str(attribute).strip() else str(attribute).strip()
    if configured is not None and attribute is not None and not same_units(configured, attribute, name):
        raise DataFileError(
            f"variable '{name}' (column '{column}'): the file's units attribute {attribute!r} contradicts the "
            f"configured units {configured!r}; fix the configuration or the file", path, basin)
    if configured is None and attribute is None:
        raise DataFileError(
            f"variable '{name}' (column '{column}'): no units configured and the file has no units attribute; "
            f"pass units={{'{name}': '...'}}", path, basin)
    return str(configured if configured is not None else attribute)


def _read_netcdf(path: Path, basin: str, columns: Sequence[str], time_column: str):
    try:
        nc = xr.open_dataset(path)
    except (OSError, ValueError) as err:
        raise DataFileError(f"cannot be opened as netCDF: {err}", path, basin) from None
    with nc:
        dims = [d for d in (time_column, "time", "date") if d in nc.dims]
        if not dims:
            raise DataFileError(f"no '{time_column}' dimension; dims are {dict(nc.sizes)}", path, basin)
        tdim = dims[0]
        absent = [c for c in columns if c not in nc.data_vars]
        if absent:
            raise DataFileError(f"variable(s) {absent} missing; file has {list(nc.data_vars)}", path, basin)
        if not np.issubdtype(nc[tdim].dtype, np.datetime64):
            raise DataFileError(f"'{tdim}' is not a date axis (dtype {nc[tdim].dtype})", path, basin, column=tdim)
        dates = pd.DatetimeIndex(nc[tdim].values)
        values, counts, units = {}, {}, {}
        for c in columns:
            v = nc[c].squeeze(drop=True)
            if v.dims != (tdim,):
                raise DataFileError(f"variable '{c}' has dims {v.dims}, expected ({tdim!r},)", path, basin, column=c)
            values[c], counts[c] = mask_sentinels(np.asarray(v.values, np.float64))
            units[c] = v.attrs.get("units")
    check_daily(dates, path, basin)
    return dates, values, counts, units


def _read_attributes(path: Path, basin_column: str | None) -> pd.DataFrame:
    check_table_lines(path, ",")
    try:
        head = pd.read_csv(path, nrows=0)
    except (ValueError, pd.errors.ParserError) as err:
        raise DataFileError(f"cannot be parsed as CSV: {err}", path) from None
    if basin_column is None:
        found = [c for c in ("basin", "gauge_id") if c in head.columns]
        if not found:
            raise DataFileError(f"line 1 has no 'basin' or 'gauge_id' column; columns are {list(head.columns)}", path, line=1)
        basin_column = found[0]
    elif basin_column not in head.columns:
        raise DataFileError(f"line 1 has no '{basin_column}' column; columns are {list(head.columns)}", path, line=1)
    table = pd.read_csv(path, dtype={basin_column: str})
    ids = table.pop(basin_column).str.strip()
    repeat = np.flatnonzero(ids.duplicated().to_numpy())
    if repeat.size:
        line = int(repeat[0]) + 2
        raise DataFileError(f"duplicate basin id {ids.iloc[repeat[0]]!r} (first repeat on line {line})", path, line=line)
    table.index = ids.to_numpy()
    return table


def load_folder(
    root,
    variables: Mapping[str, str],
    units: Mapping[str, str] | None = None,
    attributes_file: str | None = "attributes.csv",
    basin_column: str | None = None,
    time_column: str = "date",
    basins=None,
    start=None,
    end=None,
    *,
    area: str | None = None,
    area_units: str = "km2",
    latitude: str | None = None,
    longitude: str | None = None,
    day_length: bool = True,
    date_format: str | None = "%Y-%m-%d",
    delimiter: str = ",",
    validate: bool = True,
    policies=None,
    required_attributes=None,
) -> xr.Dataset:
    """Load a folder of per-basin files (layout in the module doc) into one Dataset.

    Args:
        root: the folder holding ``timeseries/`` and the attribute table.
        variables: ``package name -> file column``, e.g. ``{"precipitation": "P"}``.
        units: ``package name -> units of the file column``, e.g.
            ``{"precipitation": "mm/d", "temperature": "K"}`` (see :func:`convert_units`;
            a name unknown to :data:`~difhydro.data.validation.VARIABLES` is kept in the
            units given). Required for CSV files; for netCDF files a variable's
            ``units`` attribute is used where no units are configured, and must agree
            with them where they are (else a :class:`~difhydro.data.DataFileError`
            naming variable, file and both units).
        attributes_file: the attribute CSV below ``root`` (``None``: no attributes).
        basin_column: its basin id column (default: ``basin``, else ``gauge_id``).
        time_column: the date column (CSV) or dimension (netCDF; ``time`` / ``date`` also
            accepted).
        basins: ids to load (default: every file in ``timeseries/``).
        start, end: first and last day (inclusive); default: union of all records.
        area: attribute column with the catchment area, needed to turn a discharge
            (m3 s-1, ft3 s-1, l s-1) into mm d-1; ``area_units``: ``"km2"`` or ``"m2"``.
        latitude: attribute column in degrees north, for ``day_length`` and stored as
            ``gauge_lat`` (default: the first of ``gauge_lat``, ``latitude``, ``lat``).
        longitude: attribute column in degrees east, stored as ``gauge_lon`` (default:
            the first of ``gauge_lon``, ``longitude``, ``lon``, if any).
        day_length: add ``day_length`` (h, FAO-56) unless a variable already provides it.
        date_format: of the CSV date column (``None``: any ISO 8601 date).
        delimiter: of the CSV files.
        validate, policies, required_attributes: the validation pass, as in
            :func:`~difhydro.data.camels.load_camels_us`.

    Returns:
        Dataset on ``(basin, time)`` (daily, union of records, NaN outside a record),
        every variable in the package's units (``attrs["units"]``, the file's units in
        ``attrs["source_units"]``), attributes on ``(basin,)``, ``gauge_lat`` /
        ``gauge_lon`` (degrees) when the coordinates are known.
    """
    root = Path(root)
    variables = dict(variables)
    if not variables:
        raise ValueError("variables is empty; map package names to file columns, e.g. {'precipitation': 'P'}")
    units = dict(units or {})
    if area_units not in ("km2", "m2"):
        raise ValueError(f"area_units must be 'km2' or 'm2', got {area_units!r}")
    folder = root / "timeseries"
    if not folder.is_dir():
        raise FileNotFoundError(f"no timeseries folder {folder} (expected timeseries/<basin>.csv or .nc)")
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix not in (".csv", ".nc"):
            continue
        if path.stem in files:
            raise DataFileError(f"two files for one basin: {files[path.stem]} and {path}", path, path.stem)
        files[path.stem] = path
    if basins is None:
        basins = sorted(files)
        if not basins:
            raise FileNotFoundError(f"no <basin>.csv or <basin>.nc files in {folder}")
    else:
        basins = [str(b) for b in ([basins] if isinstance(basins, (str, int)) else basins)]
        if len(set(basins)) != len(basins):
            raise ValueError(f"basins contains duplicates: {sorted({b for b in basins if basins.count(b) > 1})}")
        for b in basins:
            if b not in files:
                raise FileNotFoundError(f"basin {b}: no time-series file {folder / b}.csv or .nc")
    no_units = [v for v in variables if v not in units]
    csv_files = [files[b] for b in basins if files[b].suffix == ".csv"]
    if no_units and csv_files:
        raise ValueError(f"units missing for variable(s) {no_units}; pass units={{'{no_units[0]}': '...'}} "
                         f"(the units the file column is written in; CSV files such as {csv_files[0].name} carry none)")
    static = None
    if attributes_file is not None:
        apath = root / attributes_file
        if not apath.is_file():
            raise FileNotFoundError(f"attribute table not found: {apath} (pass attributes_file=None for none)")
        static = join_attribute_tables([(apath, _read_attributes(apath, basin_column))], basins)
    columns = list(dict.fromkeys(variables.values()))
    records, counts, file_units = [], [], []
    for b in basins:
        path = files[b]
        if path.suffix == ".nc":
            dates, values, found, attrs = _read_netcdf(path, b, columns, time_column)
        else:
            dates, values, found = read_csv_records(path, b, time_column=time_column, required=columns,
                                                    delimiter=delimiter, date_format=date_format)
            attrs = {}
        records.append((dates, values))
        counts.append(found)
        file_units.append({n: _file_units(path, b, n, col, units.get(n), attrs.get(col)) for n, col in variables.items()})
    axis = daily_axis([(d[0], d[-1]) for d, _ in records], start, end)
    area_m2 = None
    if area is not None:
        if static is None or area not in static.columns:
            raise ValueError(f"area column {area!r} not in the attribute table")
        area_m2 = static[area].to_numpy(np.float64) * (1e6 if area_units == "km2" else 1.0)
    dims = ("basin", "time")
    data, source_units = {}, {}
    for name, col in variables.items():
        stacked = np.stack([place_on_axis(v[col], d, axis) for d, v in records])
        per_basin = [u[name] for u in file_units]
        source_units[name] = ", ".join(dict.fromkeys(per_basin))
        if len(set(per_basin)) == 1:
            data[name] = _convert(stacked, per_basin[0], name, area_m2)
        else:  # netCDF files with different units attributes: each basin converted from its own
            data[name] = np.stack([_convert(row, u, name, None if area_m2 is None else area_m2[i])
                                   for i, (row, u) in enumerate(zip(stacked, per_basin))])
    ds = xr.Dataset({n: (dims, v.astype(np.float32)) for n, v in data.items()},
                    coords={"basin": np.array(basins, dtype=str), "time": axis})
    spans = encode_spans({b: (d[0], d[-1]) for b, (d, _) in zip(basins, records)})
    for name, col in variables.items():
        ds[name].attrs.update(
            source_units=source_units[name], source_column=col, record=spans,
            sentinel_counts=encode_counts({b: c.get(col, 0) for b, c in zip(basins, counts)}),
        )
        ds[name].attrs.setdefault("units", source_units[name])
    if static is not None:
        ds = ds.assign({
            c: ("basin", static[c].to_numpy().astype(np.float32 if pd.api.types.is_numeric_dtype(static[c]) else str))
            for c in static.columns if c not in ds
        })
    set_units(ds)
    ds = _with_coordinates(ds, latitude, longitude)
    if day_length and "day_length" not in ds:
        if "gauge_lat" not in ds:
            raise ValueError(
                f"day_length needs a latitude attribute ({latitude or 'gauge_lat, latitude or lat'} not found); "
                "pass latitude='<column>' or day_length=False"
            )
        ds = with_day_length(ds, "gauge_lat")
    ds.attrs.update(title=f"folder data set ({root})", source=str(root))
    converted = [f"{n} {source_units[n]} -> {ds[n].attrs['units']}" for n in variables
                 if any(_norm(u) != _norm(ds[n].attrs["units"]) for u in source_units[n].split(", "))]
    if converted:
        add_note(ds, "converted units: " + ", ".join(converted))
    return validated(ds, validate, policies=policies, required_attributes=required_attributes, source=f"folder {root}")


def _with_coordinates(ds: xr.Dataset, latitude: str | None, longitude: str | None) -> xr.Dataset:
    """``gauge_lat`` / ``gauge_lon`` (degrees, float64 on ``basin``) from the named (or
    first found) attribute columns; a named column that is absent raises."""
    for given, store, names, units, word in (
        (latitude, "gauge_lat", ("gauge_lat", "latitude", "lat"), "degrees_north", "latitude"),
        (longitude, "gauge_lon", ("gauge_lon", "longitude", "lon"), "degrees_east", "longitude"),
    ):
        if given is not None and given not in ds:
            raise ValueError(f"{word} column {given!r} not in the attribute table")
        column = given if given is not None else next((c for c in names if c in ds), None)
        if column is None:
            continue
        if ds[column].dtype.kind not in "fiu":
            raise ValueError(f"{word} column {column!r} is not numeric (dtype {ds[column].dtype})")
        values = np.asarray(ds[column].values, np.float64)
        if store in ds and column != store and not np.allclose(ds[store].values, values, equal_nan=True):
            raise ValueError(f"the attribute table has both {store!r} and {column!r} (named as the "
                             f"{word}) with different values; name one")
        ds[store] = ("basin", values)
        ds[store].attrs.update(units=units, long_name=f"gauge {word}", source_column=column)
    return ds


def _convert(values, units, name, area_m2):

    if name not in VARIABLES:
        return values  # no package units known: kept as given
    return convert_units(values, units, name, area_m2)
