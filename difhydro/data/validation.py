"""One validation pass over a loaded data set: units, plausible ranges, sentinels, gaps.

Every reader of :mod:`difhydro.data` ends with :func:`validate` (``validate=False`` skips
it). The pass is vectorised over all basins and days of a variable (a Python loop runs
only over variables and attributes) and checks

* the ``time`` axis: daily, without duplicates, gaps or disorder, and covering the
  declared ``period`` when one is given (a record cut short is an error);
* every dynamic ``(basin, time)`` float variable: declared units against
  :data:`VARIABLES`, sentinel codes (-999, -9999, also those a reader already turned
  into NaN and counted in ``attrs["sentinel_counts"]``), +-inf, values outside the valid
  range, temperatures that look like Kelvin, missing values inside a basin's record;
* static ``(basin,)`` attributes: NaN, +-inf or sentinels, and the presence of every
  ``required_attributes``;
* each basin as a whole (:mod:`.plausibility`, on long-term means of the cleaned data):
  the runoff ratio and Budyko's water and energy limits, the precipitation magnitude,
  the coordinates against the temperature cycle, a constant streamflow series.

What happens to a problem is set by an explicit :class:`Policy` per variable (or group
``"forcing"`` / ``"target"`` / ``"attributes"``):

=============  ==========================================================================
``error``      raise one :class:`DataValidationError` listing offending basin / variable /
               date triples and counts (the default for forcing and attributes)
``mask``       set sentinels, +-inf and out-of-range values to NaN and count them (the
               default for the target, streamflow: missing observations are normal)
``interpolate`` mask, then fill runs of missing days up to ``max_gap`` days linearly in
               time (exactly ``np.interp`` over the gap); a longer run, or one at the edge
               of a record, raises
``impute``     (attributes) fill a missing attribute with the ``mean`` / ``median`` over
               the other basins, reported per basin
``flag``       (plausibility checks) keep the data, report the basin and why
=============  ==========================================================================

The plausibility checks take a policy under their own name (``"runoff_ratio"``,
``"water_limit"``, ``"energy_limit"``, ``"precipitation_magnitude"``, ``"coordinates"``,
``"latitude_agreement"``,
``"constant_streamflow"``) or the group ``"plausibility"``; their defaults are in
:data:`~difhydro.data.plausibility.CHECKS` (``error`` where only a unit mistake fails,
``flag`` where a real basin can; ``mask`` sets a flagged basin's streamflow to NaN).

No policy is silent: every value that was missing, masked, interpolated, clipped or
imputed is counted in the :class:`ValidationReport` (a tidy table per basin and variable,
``to_csv``, ``to_markdown`` for summary.md, ``summary_lines``), which the cleaned data set
keeps in ``attrs["validation_report"]`` (:meth:`ValidationReport.from_dataset`).

Units are never "fixed" by a policy: a temperature series that looks like Kelvin (median
above 200) or a ``units`` attribute that disagrees with :data:`VARIABLES` is always an
error (convert with :func:`difhydro.data.folder.convert_units` or at the source).

Records: without a ``period``, a basin's record for a variable is the span its file
covered (readers declare it in ``attrs["record"]``), else the span from its first to its
last non-missing day (a series without any value: the whole axis, all missing); the NaN
padding outside it (basins with shorter records on a common axis) is counted as
``outside_record`` and is not an error. With ``period=(first,
last)`` that period is the declared record of every basin: every NaN inside it counts as
missing, and an axis that ends early is a truncated record (error).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ._common import SENTINELS, decode_counts, decode_spans
from .policies import ACTIONS, IMPUTE_METHODS, policy_fields
from .plausibility import CHECKS, plausibility_findings
from .variables import VARIABLES, VariableSpec

__all__ = [
    "validated",
    "VariableSpec",
    "VARIABLES",
    "Policy",
    "DEFAULT_POLICIES",
    "DataValidationError",
    "ValidationReport",
    "validate",
]


_GROUPS = {"forcing": "forcing", "target": "target", "attributes": "static", "static": "static",
           "plausibility": "plausibility"}


@dataclass(frozen=True)
class Policy:
    """How :func:`validate` treats a variable's problems.

    Args:
        action: ``"error"``, ``"mask"`` or ``"interpolate"`` for dynamic variables;
            ``"error"`` or ``"impute"`` for static attributes; ``"error"``, ``"flag"``
            (report only) or, for the streamflow checks, ``"mask"`` for the basin-level
            plausibility checks (:data:`~difhydro.data.plausibility.CHECKS`).
        max_gap: ``interpolate``: the longest run of missing days (after masking) that
            is filled; a longer run raises.
        clip: ``(low, high)`` (either may be ``None``): valid values beyond these are
            set to the bound and counted as ``clipped`` (e.g. ``(0, None)`` for PET).
        impute: ``impute``: ``"mean"`` or ``"median"`` over the basins that have the value.
        range: replaces the valid range of :data:`VARIABLES` for this variable.
    """

    action: str = "error"
    max_gap: int = 3
    clip: tuple[float | None, float | None] | None = None
    impute: str = "mean"
    range: tuple[float, float] | None = None

    def __post_init__(self):
        if self.action not in ACTIONS:
            raise ValueError(f"policy action must be one of {ACTIONS}, got {self.action!r}")
        if int(self.max_gap) < 0:
            raise ValueError(f"max_gap must be >= 0 days, got {self.max_gap}")
        if self.impute not in IMPUTE_METHODS:
            raise ValueError(f"impute must be 'mean' or 'median', got {self.impute!r}")

    @classmethod
    def parse(cls, value) -> Policy:
        """A :class:`Policy` from itself, an action string (``"mean"`` / ``"median"``
        mean ``impute``; ``"interpolate:5"`` sets ``max_gap``) or a mapping (a config)."""
        if isinstance(value, Policy):
            return value
        return cls(**policy_fields(value))  # the one grammar, shared with the config

    def describe(self) -> str:
        text = self.action
        if self.action == "interpolate":
            text += f" (max_gap {self.max_gap} d)"
        if self.action == "impute":
            text += f" ({self.impute})"
        if self.clip is not None:
            text += f", clip {_bounds(self.clip)}"
        if self.range is not None:
            text += f", range {_bounds(self.range)}"
        return text


#: Defaults: forcing must be complete and plausible, missing observations of the target
#: are normal (masked), attributes must be complete.
DEFAULT_POLICIES: dict[str, Policy] = {
    "forcing": Policy("error"),
    "target": Policy("mask"),
    "attributes": Policy("error"),
}

COUNT_COLUMNS = (
    "n_days", "outside_record", "missing", "sentinel", "nonfinite", "out_of_range", "atypical",
    "masked", "interpolated", "clipped", "imputed", "flagged",
)
# value: the statistic of a plausibility check (e.g. the runoff ratio), NaN on other rows
COLUMNS = ("basin", "variable", "kind", "policy", "units", "value") + COUNT_COLUMNS
# counts that mean "a value was not usable as delivered"
_PROBLEM_COLUMNS = ("missing", "nonfinite", "out_of_range", "masked", "interpolated", "clipped", "imputed")


def _bounds(b) -> str:
    lo, hi = b
    return f"{'-inf' if lo is None else f'{lo:g}'}..{'inf' if hi is None else f'{hi:g}'}"


class DataValidationError(ValueError):
    """The data set failed :func:`validate` under an ``error`` policy.

    ``problems`` holds one line per problem (variable, policy, counts, first offending
    basin / date triples); ``report`` the full :class:`ValidationReport`.
    """

    def __init__(self, source: str, problems: Sequence[str], report: ValidationReport):
        self.problems = list(problems)
        self.report = report
        more = f" (and {len(self.problems) - 1} more problem(s), listed below)" if len(self.problems) > 1 else ""
        first = self.problems[0] if self.problems else "no details"
        head = f"data validation failed for {source or 'the data set'}: {first}{more}"
        body = "\n".join(f"  - {p}" for p in self.problems[1:])
        tail = ("\n  (policies: " + ", ".join(f"{k}={v}" for k, v in report.policies.items())
                + "; pass policies={...} to mask or interpolate a dynamic variable, or 'mean' to impute an attribute)")
        super().__init__(f"{head}\n{body}{tail}")


@dataclass
class ValidationReport:
    """What :func:`validate` found and did.

    ``table``: one row per (basin, variable) for dynamic variables and per (basin,
    attribute) for attributes with a problem, columns :data:`COLUMNS`:
    ``n_days`` (days of the record checked), ``outside_record`` (NaN padding outside it),
    ``missing`` (NaN inside it as delivered, sentinels included), ``sentinel`` (-999 /
    -9999 codes, from the reader or found here), ``nonfinite`` (+-inf),
    ``out_of_range`` (outside the valid range), ``atypical`` (valid but outside the
    typical range), ``masked`` (set to NaN by the policy), ``interpolated``,
    ``clipped``, ``imputed``. Plausibility checks add one row per checked basin (kind
    ``plausibility``, ``variable`` the check's name, ``value`` its statistic,
    ``flagged`` 1 where the basin failed it, ``n_days`` the days behind the mean).
    """

    table: pd.DataFrame
    source: str = ""
    policies: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    period: tuple[str, str] | None = None

    @property
    def ok(self) -> bool:
        """``True`` when no ``error`` policy was violated."""
        return not self.problems

    def totals(self) -> pd.DataFrame:
        """Counts summed per variable, with the number of basins that had any problem."""
        t = self.table
        if t.empty:
            return pd.DataFrame(columns=["variable", "kind", "policy", *COUNT_COLUMNS, "basins_affected"])
        counts = t.groupby("variable", sort=False)[list(COUNT_COLUMNS)].sum()
        first = t.groupby("variable", sort=False)[["kind", "policy", "units"]].first()
        affected = (t[list(_PROBLEM_COLUMNS) + ["atypical", "flagged"]].sum(axis=1) > 0).groupby(t["variable"], sort=False).sum()
        out = first.join(counts)
        out["basins_affected"] = affected
        return out.reset_index()

    def worst_basins(self, n: int = 5) -> pd.DataFrame:
        """The ``n`` basins with the most values missing, masked, filled or out of range."""
        t = self.table
        if t.empty:
            return pd.DataFrame(columns=["basin", *_PROBLEM_COLUMNS, "total"])
        per = t.groupby("basin")[list(_PROBLEM_COLUMNS)].sum()
        per["total"] = per.sum(axis=1)
        per = per[per["total"] > 0].sort_values("total", ascending=False, kind="stable")
        return per.head(n).reset_index()

    def to_csv(self, path) -> Path:
        """Write the tidy table (one row per basin and variable) to ``path``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.table.to_csv(path, index=False)
        return path

    def summary_lines(self) -> list[str]:
        """A few plain lines: totals per variable, problems, notes."""
        t = self.table
        n_basins = t["basin"].nunique() if not t.empty else 0
        lines = [f"data validation ({self.source or 'data set'}): {'passed' if self.ok else 'FAILED'}; "
                 f"{n_basins} basin(s); policies " + ", ".join(f"{k}={v}" for k, v in self.policies.items())]
        for _, r in self.totals().iterrows():
            parts = [f"{c.replace('_', ' ')} {int(r[c])}" for c in COUNT_COLUMNS[1:] if int(r[c])]
            lines.append(f"{r['variable']} ({r['kind']}, {r['policy']}): " + (", ".join(parts) if parts else "clean"))
        lines += [f"problem: {p}" for p in self.problems]
        lines += [f"note: {n}" for n in self.notes]
        return lines

    def to_markdown(self, max_basins: int = 5) -> str:
        """A short Markdown section for summary.md: totals per variable and worst basins."""
        cols = ["missing", "sentinel", "nonfinite", "out_of_range", "atypical", "masked", "interpolated", "clipped",
                "imputed", "outside_record"]
        tot = self.totals()
        checks = tot[tot["kind"] == "plausibility"]
        tot = tot[tot["kind"] != "plausibility"]
        out = [f"### Data validation: {'passed' if self.ok else 'FAILED'}", ""]
        n_basins = self.table["basin"].nunique() if not self.table.empty else 0
        out.append(f"Source: {self.source or 'data set'}; {n_basins} basin(s); policies: "
                   + ", ".join(f"{k} = {v}" for k, v in self.policies.items()) + ".")
        out.append("")
        out.append("| variable | kind | policy | " + " | ".join(c.replace("_", " ") for c in cols) + " | basins affected |")
        out.append("|---|---|---|" + "---:|" * (len(cols) + 1))
        for _, r in tot.iterrows():
            out.append(f"| {r['variable']} | {r['kind']} | {r['policy']} | "
                       + " | ".join(str(int(r[c])) for c in cols) + f" | {int(r['basins_affected'])} |")
        if len(checks):
            out += ["", "Plausibility of each basin (long-term means; thresholds and reasoning in "
                    "`difhydro.data.plausibility`):", "",
                    "| check | policy | rule | basins checked | flagged |", "|---|---|---|---:|---:|"]
            n_checked = self.table[self.table["kind"] == "plausibility"].groupby("variable", sort=False).size()
            for _, r in checks.iterrows():
                rule = CHECKS[r["variable"]].rule if r["variable"] in CHECKS else ""
                out.append(f"| {r['variable']} | {r['policy']} | {rule} | {int(n_checked.get(r['variable'], 0))} | "
                           f"{int(r['flagged'])} |")
        worst = self.worst_basins(max_basins)
        if len(worst):
            out += ["", f"Worst basins (values missing, masked, filled or out of range; top {max_basins}):", ""]
            wc = [c for c in _PROBLEM_COLUMNS if worst[c].sum() > 0]
            out.append("| basin | " + " | ".join(c.replace("_", " ") for c in wc) + " | total |")
            out.append("|---|" + "---:|" * (len(wc) + 1))
            for _, r in worst.iterrows():
                out.append(f"| {r['basin']} | " + " | ".join(str(int(r[c])) for c in wc) + f" | {int(r['total'])} |")
        if self.problems:
            out += ["", "Problems:", ""] + [f"- {p}" for p in self.problems]
        if self.notes:
            out += ["", "Notes:", ""] + [f"- {n}" for n in self.notes]
        return "\n".join(out) + "\n"

    def to_json(self) -> str:
        return json.dumps({
            "source": self.source, "policies": self.policies, "notes": self.notes, "problems": self.problems,
            "period": list(self.period) if self.period else None,
            "columns": list(self.table.columns), "rows": self.table.to_numpy().tolist(),
        }, default=lambda x: x.item() if hasattr(x, "item") else str(x))

    @classmethod
    def from_json(cls, text: str) -> ValidationReport:
        d = json.loads(text)
        table = pd.DataFrame(d["rows"], columns=d["columns"])
        for c in COUNT_COLUMNS:
            if c in table:
                table[c] = table[c].astype(np.int64)
        if "value" in table:
            table["value"] = table["value"].astype(np.float64)
        return cls(table, d["source"], d["policies"], d["notes"], d["problems"],
                   tuple(d["period"]) if d.get("period") else None)

    @classmethod
    def from_dataset(cls, ds: xr.Dataset) -> ValidationReport:
        """The report a validated data set carries in ``attrs["validation_report"]``."""
        text = ds.attrs.get("validation_report")
        if not text:
            raise KeyError("the data set carries no validation report (load it with validate=True or call validate)")
        return cls.from_json(text)


# -- the pass -------------------------------------------------------------------------------


def _resolve(name: str, kind: str, policies: Mapping) -> Policy:
    if name in policies:
        return policies[name]
    group = {"forcing": "forcing", "target": "target", "static": "attributes"}[kind]
    return policies.get(group, DEFAULT_POLICIES[group])


def _examples(mask: np.ndarray, a: np.ndarray | None, basins, times, k: int = 3) -> str:
    idx = np.argwhere(mask)[:k]
    out = []
    for b, t in idx:
        day = str(times[t])[:10]
        val = "" if a is None else f" ({a[b, t]:g})"
        out.append(f"basin {basins[b]} on {day}{val}")
    return "; ".join(out)


def _basin_list(flags: np.ndarray, basins, k: int = 5) -> str:
    hit = [str(b) for b in np.asarray(basins)[flags]]
    return ", ".join(hit[:k]) + (f" and {len(hit) - k} more" if len(hit) > k else "")


def _runs(mask: np.ndarray):
    """Runs of True along axis 1: ``(row, start, stop)`` arrays (``stop`` exclusive)."""
    b, t = mask.shape
    padded = np.zeros((b, t + 2), np.int8)
    padded[:, 1:-1] = mask
    d = np.diff(padded, axis=1)
    rows, starts = np.nonzero(d == 1)
    _, stops = np.nonzero(d == -1)
    return rows, starts, stops


def _check_time(ds: xr.Dataset, period) -> tuple[list[str], np.ndarray | None, tuple[str, str] | None]:
    """Structural checks of the time axis; the mask of the declared period, if any."""
    problems: list[str] = []
    if "time" not in ds.coords:
        return [f"no 'time' coordinate; coordinates are {list(ds.coords)}"], None, None
    times = ds["time"].values
    if not np.issubdtype(times.dtype, np.datetime64):
        return [f"'time' is not a datetime axis (dtype {times.dtype})"], None, None
    if len(times) == 0:
        return ["the time axis is empty"], None, None
    days = times.astype("datetime64[D]")
    if np.any(times.astype("datetime64[ns]") != days.astype("datetime64[ns]")):
        problems.append("'time' holds times of day; daily records are expected at 00:00")
    step = np.diff(days.astype(np.int64))
    back = np.flatnonzero(step <= 0)
    if back.size:
        i = int(back[0])
        problems.append(f"time axis: {days[i + 1]} follows {days[i]} (duplicate or unordered dates, {back.size} in all)")
    gaps = np.flatnonzero(step > 1)
    if gaps.size:
        i = int(gaps[0])
        problems.append(f"time axis: gap between {days[i]} and {days[i + 1]} ({gaps.size} gap(s)); "
                        "records must be consecutive days")
    if period is None:
        return problems, None, None
    first, last = (np.datetime64(pd.Timestamp(x).date(), "D") for x in period)
    if last < first:
        raise ValueError(f"period ends ({last}) before it starts ({first})")
    if len(days) and (days[0] > first or days[-1] < last):
        span = f"{days[0]}..{days[-1]}" if len(days) else "empty"
        problems.append(f"time axis {span} does not cover the declared record {first}..{last} (truncated record)")
    return problems, (days >= first) & (days <= last), (str(first), str(last))


def validated(ds: xr.Dataset, enabled: bool = True, *, policies=None, required_attributes=None,
              source: str = "") -> xr.Dataset:
    """``ds`` cleaned by :func:`validate` (report in ``attrs["validation_report"]``) when
    ``enabled``; the readers call this as their last step."""
    if not enabled:
        return ds
    return validate(ds, policies=policies, required_attributes=required_attributes, source=source)[0]


def validate(
    ds: xr.Dataset,
    policies: Mapping | None = None,
    required_attributes: Sequence[str] | None = None,
    source: str | None = None,
    *,
    period=None,
    variables: Sequence[str] | None = None,
    targets: Sequence[str] | None = None,
) -> tuple[xr.Dataset, ValidationReport]:
    """Check a ``(basin, time)`` data set once and apply the policies.

    Args:
        ds: dynamic variables on ``(basin, time)`` (any order), attributes on ``(basin,)``.
        policies: ``name -> policy`` for variables or attributes, or for the groups
            ``"forcing"``, ``"target"``, ``"attributes"``; a policy is a :class:`Policy`,
            an action string (``"error"``, ``"mask"``, ``"interpolate"``,
            ``"interpolate:<max_gap>"``, ``"mean"`` / ``"median"`` for attributes) or a
            mapping of :class:`Policy` fields. Unset: :data:`DEFAULT_POLICIES`.
        required_attributes: attributes the model uses (or ``"all"`` numeric ones):
            each must exist and be finite for every basin (else the ``attributes``
            policy applies). Other numeric attributes with NaN are reported (their
            sentinels and +-inf set to NaN), not enforced.
        source: a name for messages and the report (default ``ds.attrs["title"]``).
        period: ``(first, last)``: the declared record of every basin (see module doc).
        variables: the dynamic variables to check (default: every float ``(basin, time)``
            variable).
        targets: variables with the ``target`` role (default: those of kind ``target``
            in :data:`VARIABLES`, i.e. ``streamflow``); every other one is forcing.

    Returns:
        ``(clean, report)``: ``clean`` is a copy of ``ds`` with the policies applied,
        ``attrs["validation_report"]`` (JSON of ``report``) and ``attrs["validation"]``
        (its summary lines), and each checked variable's ``attrs["validation_policy"]``.

    Raises:
        DataValidationError: a problem under an ``error`` policy, a Kelvin-looking
            temperature or disagreeing units, an attribute that is absent, a broken
            time axis, or a gap too long to interpolate; all problems in one message.
    """
    source = source or str(ds.attrs.get("title") or ds.attrs.get("source") or "data set")
    given = {k: Policy.parse(v) for k, v in (policies or {}).items()}
    for k, p in given.items():
        group = _GROUPS.get(k) or (VARIABLES[k].kind if k in VARIABLES else None)
        if k in CHECKS or group == "plausibility":
            allowed = CHECKS[k].actions if k in CHECKS else ("error", "flag")
            if p.action not in allowed:
                raise ValueError(f"policy for {k!r}: the plausibility check takes {', '.join(allowed)}, got {p.action!r}")
            continue
        if p.action == "flag":
            raise ValueError(f"policy for {k!r}: 'flag' is for the plausibility checks {sorted(CHECKS)}; a variable "
                             "takes 'error', 'mask' or 'interpolate', an attribute 'error' or 'impute'")
        if group == "static" and p.action in ("mask", "interpolate"):
            raise ValueError(f"policy for {k!r}: attributes take 'error' or 'impute', got {p.action!r}")
        if group in ("forcing", "target") and p.action == "impute":
            raise ValueError(f"policy for {k!r}: 'impute' is for attributes; use 'mask' or 'interpolate'")
    pol = {**DEFAULT_POLICIES, **{("attributes" if k == "static" else k): v for k, v in given.items()}}
    if "basin" not in ds.dims:
        raise ValueError(f"validate needs a 'basin' dimension; dims are {dict(ds.sizes)}")
    basins = np.asarray(ds["basin"].values).astype(str)
    problems, in_period, period_str = _check_time(ds, period)
    if "time" not in ds.coords or not np.issubdtype(ds["time"].dtype, np.datetime64) or ds.sizes.get("time", 0) == 0:
        raise DataValidationError(source, problems, ValidationReport(pd.DataFrame(columns=COLUMNS), source))
    times = ds["time"].values
    target_names = set(targets) if targets is not None else {k for k, v in VARIABLES.items() if v.kind == "target"}
    dynamic = [
        n for n, v in ds.data_vars.items()
        if set(v.dims) == {"basin", "time"} and v.dtype.kind == "f" and (variables is None or n in variables)
    ]
    if variables is not None:
        absent = [v for v in variables if v not in dynamic]
        if absent:
            problems.append(f"variable(s) {absent} not in the data set as float (basin, time) arrays")
    notes = [n for n in str(ds.attrs.get("data_notes", "")).split("\n") if n]
    out = ds.copy()
    frames = []
    used: dict[str, str] = {}
    for name in dynamic:
        kind = "target" if name in target_names else "forcing"
        policy = _resolve(name, kind, pol)
        used[name] = policy.describe()
        da = ds[name].transpose("basin", "time")
        a = np.array(da.values, dtype=np.float64)
        n_t = a.shape[1]
        spec = VARIABLES.get(name)
        units = str(da.attrs.get("units", spec.units if spec else ""))
        label = f"{name} ({kind}, policy {policy.describe()}"
        if spec is not None and "units" in da.attrs and units != spec.units:
            problems.append(f"{name}: units {units!r} differ from the expected {spec.units!r}; convert the data "
                            "(difhydro.data.folder.convert_units) before loading")
        lo, hi = policy.range or (spec.valid if spec else (-np.inf, np.inf))
        label += f", valid {_bounds((lo, hi))} {units})" if spec or policy.range else ")"
        # sentinels: those still in the data, and those the reader already turned into NaN
        sent_here = np.isin(a, SENTINELS)
        if spec is not None or policy.range is not None:  # a -999 inside a valid range is a value
            sent_here &= ~((a >= lo) & (a <= hi))
        a[sent_here] = np.nan
        reader = decode_counts(da.attrs.get("sentinel_counts"))
        sent_reader = np.array([reader.get(b, 0) for b in basins], np.int64)
        present = ~np.isnan(a)
        if in_period is not None:
            rec = np.broadcast_to(in_period, a.shape)
        else:
            # the record a reader declared (attrs["record"]), else first..last value present
            any_p = present.any(axis=1)
            first = np.where(any_p, np.argmax(present, axis=1), 0)
            last = np.where(any_p, n_t - 1 - np.argmax(present[:, ::-1], axis=1), n_t - 1)
            spans = decode_spans(da.attrs.get("record"))
            if spans:
                days = times.astype("datetime64[D]")
                known = np.array([b in spans for b in basins])
                lo_d = np.array([spans[b][0] if b in spans else days[0] for b in basins], "datetime64[D]")
                hi_d = np.array([spans[b][1] if b in spans else days[-1] for b in basins], "datetime64[D]")
                first = np.where(known, np.searchsorted(days, lo_d, side="left"), first)
                last = np.where(known, np.searchsorted(days, hi_d, side="right") - 1, last)
            idx = np.arange(n_t)
            rec = (idx >= first[:, None]) & (idx <= last[:, None])
        missing = ~present & rec
        nonfinite = np.isinf(a)
        finite = np.isfinite(a)
        oor = finite & ((a < lo) | (a > hi))
        valid = finite & ~oor
        atyp = np.zeros_like(valid)
        if spec is not None and spec.typical is not None:
            tlo, thi = spec.typical
            atyp = valid & ((a < tlo) | (a > thi))
        # Kelvin: a whole series in the wrong unit, never masked away
        if spec is not None and spec.kelvin_check and finite.any():
            with warnings.catch_warnings():  # a basin without values: median NaN, no Kelvin
                warnings.simplefilter("ignore", RuntimeWarning)
                med = np.nanmedian(np.where(finite, a, np.nan), axis=1)
            kelvin = np.isfinite(med) & (med > 200.0)
            if kelvin.any():
                problems.append(
                    f"{name}: looks like Kelvin, not degC, in {int(kelvin.sum())} basin(s) ({_basin_list(kelvin, basins)}; "
                    f"median {np.nanmax(med[kelvin]):.1f} > 200); convert with T - 273.15"
                )
        clipped = np.zeros_like(valid)
        if policy.clip is not None:
            clo = -np.inf if policy.clip[0] is None else policy.clip[0]
            chi = np.inf if policy.clip[1] is None else policy.clip[1]
            clipped = valid & ((a < clo) | (a > chi))
            a = np.where(clipped, np.clip(a, clo, chi), a)
        bad = nonfinite | oor
        masked = np.zeros_like(bad)
        filled = np.zeros_like(bad)
        if policy.action == "error":
            n_sent = sent_reader + sent_here.sum(axis=1)
            if missing.any():
                rows = missing.any(axis=1)
                s = int(n_sent[rows].sum())
                problems.append(
                    f"{label}: {int(missing.sum())} missing value(s) inside the record in {int(rows.sum())} basin(s) "
                    f"({_basin_list(rows, basins)})" + (f", {s} of them sentinel codes (-999 / -9999)" if s else "")
                    + f"; first: {_examples(missing, None, basins, times)}"
                )
            if nonfinite.any():
                rows = nonfinite.any(axis=1)
                problems.append(
                    f"{label}: {int(nonfinite.sum())} infinite value(s) in {int(rows.sum())} basin(s) "
                    f"({_basin_list(rows, basins)}); first: {_examples(nonfinite, a, basins, times)}"
                )
            if oor.any():
                rows = oor.any(axis=1)
                low, high = int((oor & (a < lo)).sum()), int((oor & (a > hi)).sum())
                what = ", ".join(x for x in (f"{low} below {lo:g}" if low else "", f"{high} above {hi:g}" if high else "") if x)
                problems.append(
                    f"{label}: {int(oor.sum())} value(s) out of range ({what}) in {int(rows.sum())} basin(s) "
                    f"({_basin_list(rows, basins)}); first: {_examples(oor, a, basins, times)}"
                )
        else:
            masked = bad.copy()
            a[bad] = np.nan
            if policy.action == "interpolate":
                holes = np.isnan(a) & rec
                rows, starts, stops = _runs(holes)
                length = stops - starts
                inner = (starts > 0) & (stops < n_t)
                left = np.where(inner, a[rows, np.maximum(starts - 1, 0)], np.nan)
                right = np.where(inner, a[rows, np.minimum(stops, n_t - 1)], np.nan)
                ok = np.isfinite(left) & np.isfinite(right) & (length <= policy.max_gap)
                if (~ok).any():
                    k = int(np.flatnonzero(~ok)[0])
                    too_long = int(((length > policy.max_gap)).sum())
                    problems.append(
                        f"{label}: {int((~ok).sum())} gap(s) cannot be interpolated ({too_long} longer than "
                        f"{policy.max_gap} day(s), {int((~ok).sum()) - too_long} at a record edge) in "
                        f"{len(set(rows[~ok]))} basin(s); first: basin {basins[rows[k]]} "
                        f"{str(times[starts[k]])[:10]}..{str(times[stops[k] - 1])[:10]} ({int(length[k])} day(s))"
                    )
                r, s0, s1, L = rows[ok], starts[ok], stops[ok], length[ok]
                run = np.repeat(np.arange(len(L)), L)
                offset = np.arange(int(L.sum())) - np.repeat(np.cumsum(L) - L, L)
                x0 = s0[run] - 1
                f0, f1 = a[r[run], x0], a[r[run], s1[run]]
                slope = (f1 - f0) / (s1[run] - x0)  # the formula of np.interp
                a[r[run], s0[run] + offset] = slope * (offset + 1) + f0
                filled[r[run], s0[run] + offset] = True
                masked &= ~filled
        out[name] = (da.dims, a.astype(da.dtype))
        out[name].attrs.update(da.attrs)
        out[name].attrs["validation_policy"] = policy.describe()
        out[name] = out[name].transpose(*ds[name].dims)
        frames.append(pd.DataFrame({
            "basin": basins, "variable": name, "kind": kind, "policy": policy.describe(), "units": units,
            "n_days": rec.sum(axis=1), "outside_record": (~rec).sum(axis=1),
            "missing": missing.sum(axis=1),
            "sentinel": sent_reader + sent_here.sum(axis=1), "nonfinite": nonfinite.sum(axis=1),
            "out_of_range": oor.sum(axis=1), "atypical": atyp.sum(axis=1), "masked": masked.sum(axis=1),
            "interpolated": filled.sum(axis=1), "clipped": clipped.sum(axis=1), "imputed": 0,
        }))
        if spec is not None and spec.typical is not None and atyp.any():
            rows = atyp.any(axis=1)
            notes.append(
                f"{name}: {int(atyp.sum())} value(s) in {int(rows.sum())} basin(s) outside the typical "
                f"{_bounds(spec.typical)} {spec.units} (min {np.nanmin(np.where(valid, a, np.nan)):g}, max "
                f"{np.nanmax(np.where(valid, a, np.nan)):g}); {spec.note}"
            )
    # -- attributes ----------------------------------------------------------------------
    static = [n for n, v in ds.data_vars.items() if v.dims == ("basin",)]
    if isinstance(required_attributes, str):
        if required_attributes != "all":
            raise ValueError(f"required_attributes is a list of names or 'all', got {required_attributes!r}")
        required = [n for n in static if ds[n].dtype.kind in "fiu"]
    else:
        required = list(required_attributes or [])
    absent = [r for r in required if r not in static]
    if absent:
        have = [n for n in static if ds[n].dtype.kind in "fiu"]
        problems.append(f"attributes: required attribute(s) {absent} are not in the data set ({len(have)} numeric "
                        f"attribute(s) loaded; an attribute table missing?)")
    not_numeric = [r for r in required if r in static and ds[r].dtype.kind not in "fiu"]
    if not_numeric:
        problems.append(f"attributes: required attribute(s) {not_numeric} are not numeric")
    attr_rows = []
    checked = 0
    for name in static:
        if ds[name].dtype.kind not in "fiu":
            continue
        vals = np.array(ds[name].values, dtype=np.float64)
        infinite = np.isinf(vals)
        sentinel = np.isin(vals, SENTINELS)
        bad = sentinel | ~np.isfinite(vals)
        is_required = name in required
        checked += is_required
        if not bad.any():
            continue
        policy = _resolve(name, "static", pol) if is_required else None
        imputed = np.zeros_like(bad)
        desc = policy.describe() if policy else "report (not required)"
        if policy is not None:
            used[name] = desc
            if policy.action == "error":
                problems.append(
                    f"attributes: {name} (policy error) is missing in {int(bad.sum())} basin(s) ({_basin_list(bad, basins)})"
                    f"; pass policies={{'{name}': 'mean'}} (or 'attributes': 'mean') to impute it, reported per basin"
                )
            elif bad.all():
                problems.append(f"attributes: {name} is missing in every basin; nothing to impute from")
            else:
                fill = np.mean(vals[~bad]) if policy.impute == "mean" else np.median(vals[~bad])
                vals = np.where(bad, fill, vals)
                imputed = bad.copy()
                notes.append(f"attributes: {name} imputed with the {policy.impute} {fill:g} in {int(bad.sum())} "
                             f"basin(s) ({_basin_list(bad, basins)})")
        else:  # not required: reported only; sentinels and +-inf become NaN like everywhere else
            vals = np.where(bad, np.nan, vals)
        out[name] = ("basin", vals.astype(ds[name].dtype if ds[name].dtype.kind == "f" else np.float64))
        out[name].attrs.update(ds[name].attrs)
        attr_rows.append(pd.DataFrame({
            "basin": basins[bad], "variable": name, "kind": "static", "policy": desc,
            "units": str(ds[name].attrs.get("units", "")), "n_days": 0, "outside_record": 0,
            "missing": 1, "sentinel": sentinel[bad].astype(int), "nonfinite": infinite[bad].astype(int),
            "out_of_range": 0, "atypical": 0, "masked": 0, "interpolated": 0, "clipped": 0,
            "imputed": imputed[bad].astype(int),
        }))
    if required and not absent:
        notes.append(f"attributes: {checked} required attribute(s) checked")
    # -- each basin as a whole: long-term means of the cleaned data ----------------------------
    check_rows = []
    for finding in plausibility_findings(out):
        check = finding.check
        policy = given.get(check.name) or given.get("plausibility") or Policy(check.default)
        if check.name in given or "plausibility" in given:
            used[check.name] = policy.describe()
        flagged = finding.flagged
        masked = np.zeros(len(basins), np.int64)
        if flagged.any():
            lines = [f"basin {basins[i]}: {finding.reasons[i]}" for i in np.flatnonzero(flagged)]
            head = (f"{check.name} ({check.rule}; policy {policy.action}): {int(flagged.sum())} basin(s) "
                    f"({_basin_list(flagged, basins)}); {lines[0]}" + (f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""))
            if policy.action == "error":
                problems.append(head + f"; if the data are right, pass policies={{'{check.name}': 'flag'}}")
            else:
                notes.append(head)
                notes += [f"{check.name}: {line}" for line in lines[1:]]
                if policy.action == "mask":
                    q = out["streamflow"].transpose("basin", "time")
                    values = np.array(q.values)
                    masked = np.isfinite(values).sum(axis=1) * flagged
                    values[flagged] = np.nan
                    out["streamflow"] = (("basin", "time"), values)
                    out["streamflow"].attrs.update(q.attrs)
                    out["streamflow"] = out["streamflow"].transpose(*ds["streamflow"].dims)
                    notes.append(f"{check.name}: streamflow of {int(flagged.sum())} basin(s) masked (all "
                                 f"{int(masked.sum())} values set to NaN) by the mask policy")
        if finding.note:
            notes.append(f"{check.name}: {finding.note}")
        rows = finding.checked
        if rows.any():
            check_rows.append(pd.DataFrame({
                "basin": basins[rows], "variable": check.name, "kind": "plausibility", "policy": policy.describe(),
                "units": check.units, "value": finding.value[rows], "n_days": np.asarray(finding.n_days)[rows],
                "masked": masked[rows], "flagged": flagged[rows].astype(np.int64),
            }))
    unused = [k for k in given if k not in _GROUPS and k not in used and k not in static]
    if unused:
        notes.append(f"policies given for {unused}, which the data set does not hold (ignored)")
    parts = frames + attr_rows + check_rows
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=COLUMNS)
    table = table.reindex(columns=list(COLUMNS))
    for c in COUNT_COLUMNS:
        table[c] = table[c].fillna(0).astype(np.int64)
    table["value"] = table["value"].astype(np.float64)
    shown = {k: v.describe() for k, v in pol.items() if k in DEFAULT_POLICIES}
    shown.update({k: v for k, v in used.items() if k in given or (k in CHECKS and "plausibility" in given)})
    report = ValidationReport(table, source, shown, notes, problems, period_str)
    if problems:
        raise DataValidationError(source, problems, report)
    out.attrs["validation_report"] = report.to_json()
    out.attrs["validation"] = "\n".join(report.summary_lines())
    return out, report
