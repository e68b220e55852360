"""The grammar of a validation policy, without NumPy, pandas or xarray.

:meth:`difhydro.data.validation.Policy.parse` and the config (``data.policies``) read
policies through :func:`policy_fields`, so that what the config accepts is exactly what
the validation pass accepts (and what its error messages recommend).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = ["ACTIONS", "IMPUTE_METHODS", "POLICY_FIELDS", "policy_fields"]

#: "flag" reports a basin-level plausibility finding and changes no data
ACTIONS = ("error", "mask", "interpolate", "impute", "flag")
IMPUTE_METHODS = ("mean", "median")
#: the fields of :class:`~difhydro.data.validation.Policy`, i.e. the keys of a mapping policy
POLICY_FIELDS = ("action", "max_gap", "clip", "impute", "range")


def _whole(value, what: str) -> int:
    """A number of days >= 0: an int, or its digits (``"interpolate:5"``)."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} is a whole number of days, got {value!r}")
    if value < 0:
        raise ValueError(f"{what} must be >= 0 days, got {value}")
    return value


def _bounds(value, what: str):
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        raise ValueError(f"{what} is a pair [low, high] (either may be null), got {value!r}")
    for v in value:
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v)):
            raise ValueError(f"{what} is a pair of numbers or null, got {value!r}")
    low, high = value
    if low is not None and high is not None and low > high:
        raise ValueError(f"{what}: low {low} above high {high}")
    return tuple(value)


def policy_fields(value) -> dict:
    """The keyword arguments of a ``Policy`` for an action string or a mapping.

    Strings: ``"error"``, ``"mask"``, ``"interpolate"`` or ``"interpolate:<max_gap>"``
    (days), ``"impute"``, and ``"mean"`` / ``"median"`` for ``impute`` with that method.
    Mappings: any of :data:`POLICY_FIELDS`, e.g. ``{action: mask, clip: [0, null]}``.

    Raises:
        ValueError: one line naming what is wrong and the accepted form.
        TypeError: neither a string nor a mapping.
    """
    if isinstance(value, Mapping):
        unknown = [k for k in value if k not in POLICY_FIELDS]
        if unknown:
            raise ValueError(f"unknown policy field(s) {sorted(map(str, unknown))}; known: {sorted(POLICY_FIELDS)}")
        kw = dict(value)
        if "action" in kw and kw["action"] not in ACTIONS:
            raise ValueError(f"policy action must be one of {ACTIONS}, got {kw['action']!r}")
        if "max_gap" in kw:
            kw["max_gap"] = _whole(kw["max_gap"], "max_gap")
        if "impute" in kw and kw["impute"] not in IMPUTE_METHODS:
            raise ValueError(f"impute must be 'mean' or 'median', got {kw['impute']!r}")
        for k in ("clip", "range"):
            if k in kw:
                kw[k] = _bounds(kw[k], k)
        return kw
    if isinstance(value, str):
        action, colon, arg = value.partition(":")
        if colon and action != "interpolate":
            raise ValueError(f"only 'interpolate:<max_gap>' takes an argument, got {value!r}")
        if action in IMPUTE_METHODS:
            return {"action": "impute", "impute": action}
        if action not in ACTIONS:
            raise ValueError(f"policy action must be one of {ACTIONS} (or mean, median, interpolate:<max_gap>), "
                             f"got {value!r}")
        if colon:
            return {"action": action, "max_gap": _whole(arg, f"the max_gap of {value!r}")}
        return {"action": action}
    raise TypeError(f"a policy is a Policy, a string or a mapping, got {type(value).__name__}")
