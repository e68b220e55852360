"""Periods: ``"START:END"`` strings, ``(start, end)`` pairs and the CAMELS presets.

One grammar for every period of difhydro (the config's ``periods``, ``--period``,
:func:`~difhydro.data.make_basin_data`). Only the standard library: the ``difhydro``
command checks a period before it imports pandas, JAX or xarray.
"""

from __future__ import annotations

import datetime as _dt

__all__ = ["CAMELS_PERIODS", "period_bounds", "resolve_period"]

#: The periods of Kratzert et al. (2019) on CAMELS-US (both days included).
CAMELS_PERIODS: dict[str, tuple[str, str]] = {
    "train": ("1999-10-01", "2008-09-30"),
    "validation": ("1980-10-01", "1989-09-30"),
    "test": ("1989-10-01", "1999-09-30"),
}


def period_bounds(period, name: str = "period") -> tuple[_dt.datetime, _dt.datetime]:
    """``(start, end)`` (both days included) of a preset of :data:`CAMELS_PERIODS`, a
    ``"START:END"`` string or a ``(start, end)`` pair of ISO 8601 dates (``YYYY-MM-DD``;
    dates, ``datetime64`` and timestamps are read through their ISO text).

    Raises a ValueError naming ``name`` (e.g. ``periods.train``, ``--period``) and the accepted
    form: an unknown preset, a period without both ends, a bad date, an end before the start.
    """
    if isinstance(period, str) and ":" not in period:
        if period not in CAMELS_PERIODS:
            raise ValueError(f"{name}: unknown period {period!r}: a period needs both ends as START:END "
                             f"(e.g. 1999-10-01:2008-09-30) or is a preset, {list(CAMELS_PERIODS)}")
        period = CAMELS_PERIODS[period]
    parts = period.split(":") if isinstance(period, str) else list(period) if isinstance(period, (list, tuple)) else None
    if parts is None or len(parts) != 2 or not all(str(p).strip() for p in parts):
        raise ValueError(f"{name}: a period needs both ends as START:END (e.g. 1999-10-01:2008-09-30), got {period!r}")
    days = []
    for p in parts:
        text = str(p).strip()
        try:
            days.append(_dt.datetime.fromisoformat(text))
        except ValueError:
            raise ValueError(f"{name}: {text!r} is not a date (use YYYY-MM-DD)") from None
    start, end = days
    if end < start:
        raise ValueError(f"{name}: the period ends ({end.date()}) before its start ({start.date()})")
    return start, end


def resolve_period(period, name: str = "period"):
    """:func:`period_bounds` as ``pandas.Timestamp`` (what the batching code slices with)."""
    import pandas as pd

    start, end = period_bounds(period, name)
    return pd.Timestamp(start), pd.Timestamp(end)
