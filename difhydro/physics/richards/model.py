"""The Richards model as a daily P-RNN layer: :class:`Richards1D`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..base import ParamSpec, ProcessModel
from ..integrate import substeps
from ..soil_hydraulics import VanGenuchten
from .adaptive import adaptive_day
from .fluxes import _SUBSTEP_IDENTITY, SOIL_NAMES, _combine_substeps, feddes_reduction
from .settings import RichardsSolver
from .substep import solve_substep

Array = jax.Array

_SOLVER_FIELDS = tuple(RichardsSolver.__dataclass_fields__)
#: the air-entry head of the model's retention curve by default (cm; Vogel et al. 2001)
DEFAULT_AIR_ENTRY = -2.0


class Richards1D(ProcessModel):
    """Layered 1-D Richards equation (van Genuchten-Mualem) as a daily P-RNN layer.

    Units: cm for lengths and heads; the time unit is set by ``k_s`` and ``dt`` (days for
    the daily model: ``dt = 1``, ``k_s`` in cm d-1). Fluxes are in cm per time unit.
    The Celia benchmarks in seconds run either with ``k_s`` in cm s-1 and ``dt`` in s
    (``simulate(..., check=False)``, since the boxes below are in cm d-1), or converted to
    days.

    Forcing (``[time, *batch]``): ``precipitation`` (water reaching the soil surface, cm
    d-1, >= 0; CAMELS mm d-1 / 10) — absent when ``top_head`` is set — and
    ``potential_transpiration`` T_p (cm d-1). Each forcing step of length ``dt`` is split
    into ``n_substeps`` nominal backward-Euler sub-steps with forcing held constant; each
    sub-step iterates until every cell's mass residual is within ``tol`` (at most
    ``n_iter`` iterations; see :func:`richards_substep`), and a sub-step that does not
    converge is repeated with half the step, as HYDRUS-1D does (:mod:`.adaptive`,
    :class:`RichardsSolver`). :func:`simulate` does not
    checkpoint the days by default (``default_checkpoint``): with the implicit gradient
    only one profile per sub-step is stored, and recomputing the Newton iterations costs
    more than it saves (pass ``checkpoint=True`` for very long sequences).

    The default iteration is Newton's (exact tridiagonal Jacobian, dK/dh and the sink
    derivative included) with a backtracking line search on the scaled residual, taken in
    effective saturation for a dry cell being wetted, linearised on the unsaturated side
    for a saturated cell that it drains below the air-entry head (and, on the plain curve,
    in ``(alpha|h|)^(n-1)`` for a near-saturated cell; ``update="mixed"``, see
    :func:`_mixed_transform` and docs/physics.md §3.8), and damped by ``max_head_change``.
    Gradients come from the implicit function theorem at the converged sub-step
    (``gradient="implicit"``: one transposed tridiagonal solve per sub-step, no reverse
    pass through the iterations). ``jacobian="picard",
    update="head", line_search=False, tol=None, n_iter=5, flux_update=False`` is the
    fixed-count modified Picard scheme of section 3.3 that this model ran before.

    Parameters are per layer, event shape ``(n_layers,)``, so they come as ``[*batch,
    n_layers]``; a per-profile scalar ``[*batch, 1]`` or ``()`` broadcasts over the layers.
    Boxes (Carsel & Parrish 1988 textures fall inside): ``theta_r`` [0, 0.2], ``theta_s``
    [0.3, 0.6], ``alpha`` [0.002, 0.2] cm-1, ``n`` [1.05, 3], ``k_s`` [0.1, 1000] cm d-1.

    States ``[*batch, n_layers]``: ``pressure_head`` h (cm) and ``water_content`` theta.
    With ``flux_update=True`` (default) theta is advanced by the fluxes of the final
    iterate, so the water balance closes to round-off, and h keeps the final iterate; at a
    converged sub-step theta and theta(h) differ by at most ``tol`` (of a cell's content
    plus its throughput), and the next step's residual ``theta(h) - theta^n`` pulls the two
    back together.

    Outputs (``[*batch]``, per forcing step):

    - ``infiltration``: flux through the surface, mean over the step (cm per time unit,
      positive downward); with the flux top ``0 <= infiltration <= precipitation``.
    - ``runoff``: ``precipitation - infiltration >= 0`` (infiltration excess above the
      ponding limit; no ponded storage).
    - ``drainage``: bottom flux (negative is capillary rise).
    - ``root_water_uptake``: Feddes sink ``S_i = T_p r_i alpha_F(h_i) / Delta_i`` summed
      over layers.
    - ``soil_water``: profile storage sum theta_i Delta_i at the end of the step (cm).
    - ``water_balance_error``: ``(soil_water_t - soil_water_{t-1}) / dt - (infiltration -
      drainage - root_water_uptake)`` (cm per time unit; cm d-1 for the daily model): float32
      round-off with ``flux_update``, the accumulated cell residuals otherwise.
    - ``iterations``: the largest number of iterations (trial updates, line-search
      retries included) any accepted sub-step of the step used.
    - ``converged``: 1 if every accepted sub-step of the step met ``tol``, else 0. With
      the time-step control a 0 means the smallest step (or the step budget) failed too:
      the heads of that sub-step are not the backward-Euler solution (with the flux
      update the balance still closes, but theta may depart from theta(h)).
    - ``substeps``: number of accepted sub-steps (``n_substeps`` on an easy day).
    - ``smallest_substep``: the shortest accepted sub-step (time units, d).


    Attributes:
        thickness: layer thicknesses Delta_i, cm, top first (non-uniform allowed).
        dt: length of one forcing step (1 d).
        n_substeps: nominal sub-steps per forcing step (the longest step is ``dt / n_substeps``).
        bottom_head: Dirichlet head below the profile (cm); ``None`` is free drainage.
        top_head: Dirichlet surface head (cm) replacing the flux top (benchmarks).
        initial_head: uniform initial pressure head, cm.
        root_depth: roots spread uniformly (per cm) over ``[0, root_depth]`` cm, used when
            ``root_fraction`` is ``None``.
        root_fraction: uptake fraction r_i per layer (sums to 1), overriding ``root_depth``.
        feddes_heads: Feddes (h1, h2, h3, h4), cm.
        air_entry: air-entry head h_s of the retention curve, cm (<= 0; default -2 cm, the
            modified van Genuchten-Mualem curve of Vogel et al. 2001 as in HYDRUS-1D; 0 is
            the plain curve). With h_s < 0, K reaches Ks at h_s with a finite slope instead
            of the unbounded slope of the plain Mualem K at h = 0 (n < 2), which is what
            lets Newton converge on the n ~ 1.1 soils (docs/physics.md §3.8). For the same
            (alpha, n, Ks) the unsaturated K is higher by 1/(1 - F(1))^2 (x1.7 for loam, x8.7
            for silty clay): parameters fitted to the plain curve need ``air_entry=0``.
        solver: the :class:`RichardsSolver` (iteration, tolerance, gradient, time-step
            control). Its fields may also be given as keywords (``Richards1D(n_iter=5,
            tol=None)``) and read as attributes (``model.n_iter``).

    Limits: a day is reported unconverged only when its smallest step (``1/2**6`` of the
    nominal one by default) fails too. Every profile of a batch has its own steps, but a batch
    runs as many passes as its slowest profile needs, so one hard profile makes the whole
    batch iterate longer (the cost of a storm day is measured in docs/physics.md).
    """


    #: measured: forward + backward 1.6x faster without checkpointing (the implicit gradient
    #: stores one profile per sub-step, not the iterations; docs/speed.md)
    default_checkpoint: ClassVar[bool] = False

    thickness: tuple[float, ...] = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    n_substeps: int = eqx.field(static=True)
    bottom_head: float | None = eqx.field(static=True)
    top_head: float | None = eqx.field(static=True)
    initial_head: float = eqx.field(static=True)
    root_depth: float = eqx.field(static=True)
    root_fraction: tuple[float, ...] | None = eqx.field(static=True)
    feddes_heads: tuple[float, float, float, float] = eqx.field(static=True)
    air_entry: float = eqx.field(static=True)
    solver: RichardsSolver = eqx.field(static=True)
    param_spec = {
        "theta_r": ParamSpec(0.0, 0.2, "-", 0.078, "residual water content (theta_r)"),
        "theta_s": ParamSpec(0.3, 0.6, "-", 0.43, "saturated water content (theta_s)"),
        "alpha": ParamSpec(0.002, 0.2, "cm-1", 0.036, "van Genuchten inverse air-entry head (alpha)"),
        "n": ParamSpec(1.05, 3.0, "-", 1.56, "van Genuchten pore-size index (n)"),
        "k_s": ParamSpec(0.1, 1000.0, "cm d-1", 24.96, "saturated hydraulic conductivity (Ks)"),
    }
    state_names = ("water_content", "pressure_head")
    output_names = (
        "infiltration",
        "runoff",
        "drainage",
        "root_water_uptake",
        "soil_water",
        "water_balance_error",
        "iterations",
        "converged",
        "substeps",
        "smallest_substep",
    )

    def __init__(
        self,
        thickness: tuple[float, ...] = (10.0,) * 10,
        dt: float = 1.0,
        n_substeps: int = 24,
        bottom_head: float | None = None,
        top_head: float | None = None,
        initial_head: float = -100.0,
        root_depth: float = 50.0,
        root_fraction: tuple[float, ...] | None = None,
        feddes_heads: tuple[float, float, float, float] = (-10.0, -25.0, -400.0, -8000.0),
        air_entry: float = DEFAULT_AIR_ENTRY,
        solver: RichardsSolver | None = None,
        **solver_options,
    ):
        unknown = sorted(set(solver_options) - set(_SOLVER_FIELDS))
        if unknown:
            raise TypeError(f"Richards1D got unknown options {unknown}; solver options are {list(_SOLVER_FIELDS)}")
        if solver is not None and solver_options:
            raise ValueError(f"pass either solver= or solver options {sorted(solver_options)}, not both")
        self.thickness = tuple(float(x) for x in thickness)
        self.dt = dt
        self.n_substeps = n_substeps
        self.bottom_head = bottom_head
        self.top_head = top_head
        self.initial_head = initial_head
        self.root_depth = root_depth
        self.root_fraction = None if root_fraction is None else tuple(float(x) for x in root_fraction)
        self.feddes_heads = tuple(feddes_heads)
        self.air_entry = float(air_entry)
        self.solver = solver if solver is not None else RichardsSolver(**solver_options)

    def __getattr__(self, name):
        # the solver's settings read as the model's (model.n_iter, model.tol, ...)
        if name in _SOLVER_FIELDS and "solver" in self.__dict__:
            return getattr(self.solver, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __check_init__(self):
        thickness = np.asarray(self.thickness, dtype=float)
        if thickness.ndim != 1 or thickness.size < 2 or not np.all(thickness > 0):
            raise ValueError(f"thickness must list >= 2 positive layer thicknesses (cm), got {self.thickness}")
        if not self.dt > 0:
            raise ValueError(f"dt must be positive, got {self.dt}")
        if int(self.n_substeps) < 1:
            raise ValueError(f"n_substeps must be >= 1, got {self.n_substeps}")
        if int(self.n_substeps) * 2 ** int(self.solver.max_halvings) >= 2**30:
            raise ValueError(f"n_substeps x 2**max_halvings must stay below 2**30, got {self.n_substeps}")
        if not self.air_entry <= 0.0:
            raise ValueError(f"air_entry must be <= 0 cm, got {self.air_entry}")
        h1, h2, h3, h4 = self.feddes_heads
        if not h1 > h2 > h3 > h4:
            raise ValueError(f"feddes_heads must satisfy h1 > h2 > h3 > h4, got {self.feddes_heads}")
        if self.root_fraction is not None:
            r = np.asarray(self.root_fraction, dtype=float)
            if r.shape != thickness.shape or np.any(r < 0) or abs(r.sum() - 1.0) > 1e-6:
                raise ValueError(
                    f"root_fraction must hold {thickness.size} non-negative values summing to 1, "
                    f"got {self.root_fraction}"
                )
        elif not self.root_depth > 0:
            raise ValueError(f"root_depth must be positive (cm), got {self.root_depth}")

    @property
    def n_layers(self) -> int:
        return len(self.thickness)

    @property
    def forcing_names(self) -> dict[str, str]:
        if self.top_head is None:
            return {"precipitation": "cm d-1", "potential_transpiration": "cm d-1"}
        return {"potential_transpiration": "cm d-1"}

    def param_event_shape(self, name: str) -> tuple[int, ...]:
        return (self.n_layers,)

    def root_fractions(self) -> np.ndarray:
        """Uptake fraction r_i per layer (numpy, sums to 1)."""
        if self.root_fraction is not None:
            return np.asarray(self.root_fraction, dtype=float)
        bottoms = np.cumsum(self.thickness)
        tops = bottoms - np.asarray(self.thickness)
        overlap = np.clip(np.minimum(bottoms, self.root_depth) - tops, 0.0, None)
        return overlap / overlap.sum()

    def soil(self, params: Mapping[str, Array]) -> VanGenuchten:
        """The van Genuchten-Mualem soil of ``params``, broadcast to ``[*batch, n_layers]``."""
        return VanGenuchten(**{k: jnp.asarray(params[k]) for k in SOIL_NAMES}, air_entry=self.air_entry)

    def initial_state(self, params: Mapping[str, Array]) -> dict[str, Array]:
        soil = self.soil(params)
        shape = jnp.broadcast_shapes(*(jnp.shape(params[k]) for k in SOIL_NAMES), (self.n_layers,))
        dtype = jnp.result_type(*(params[k] for k in SOIL_NAMES), jnp.float32)
        h = jnp.full(shape, self.initial_head, dtype)
        return {"water_content": soil.water_content(h), "pressure_head": h}


    def _fixed_day(self, h, theta, top_flux, tp, soil):
        """``n_substeps`` equal sub-steps (``lax.scan``): the scheme without time-step control."""
        roots = jnp.asarray(self.root_fractions(), h.dtype)
        dt_sub = self.dt / int(self.n_substeps)

        def uptake(h_):
            return tp[..., None] * roots * feddes_reduction(h_, self.feddes_heads)

        def substep(carry):
            h_, theta_, f = solve_substep(*carry, soil, self.thickness, dt_sub, self.solver, top_flux=top_flux,
                                          top_head=self.top_head, bottom_head=self.bottom_head, uptake=uptake)
            return (h_, theta_), f

        (h, theta), f = substeps(substep, (h, theta), self.n_substeps, _combine_substeps, _SUBSTEP_IDENTITY)
        n = int(self.n_substeps)
        ones = jnp.ones_like(f.top)
        return h, theta, {
            "top": f.top / n, "bottom": f.bottom / n, "uptake": f.uptake / n, "runoff": f.runoff / n,
            "iterations": f.iterations, "converged": f.converged,
            "substeps": n * ones, "smallest_substep": dt_sub * ones,
        }

    def _adaptive_day(self, h, theta, top_flux, tp, soil):
        """The day with the time-step control (:mod:`.adaptive`) on the flattened batch."""
        batch, n = h.shape[:-1], h.shape[-1]
        flat = lambda x: jnp.broadcast_to(x, (*batch, n)).reshape(-1, n)  # noqa: E731
        top = jnp.zeros(batch, h.dtype) if top_flux is None else jnp.broadcast_to(top_flux, batch)
        h1, theta1, tot = adaptive_day(
            self, flat(h), flat(theta), top.reshape(-1), jnp.broadcast_to(tp, batch).reshape(-1),
            tuple(flat(jnp.asarray(getattr(soil, k), h.dtype)) for k in SOIL_NAMES),
        )
        unflat = lambda x: x.reshape(*batch, *x.shape[1:])  # noqa: E731
        mean = {k: unflat(getattr(tot, k)) / self.dt for k in ("top", "bottom", "uptake", "runoff")}
        diag = {k: unflat(getattr(tot, k)) for k in ("iterations", "converged", "substeps")}
        return unflat(h1), unflat(theta1), {**mean, **diag, "smallest_substep": unflat(tot.smallest)}

    def _advance(self, h, theta, forcing, params):
        soil = self.soil(params)
        tp = jnp.asarray(forcing["potential_transpiration"], h.dtype)
        top_flux = None if self.top_head is not None else jnp.asarray(forcing["precipitation"], h.dtype)
        day = self._adaptive_day if self.solver.adaptive else self._fixed_day
        theta_start = theta
        h, theta, f = day(h, theta, top_flux, tp, soil)
        thick = jnp.asarray(np.asarray(self.thickness), theta.dtype)
        change = ((theta - theta_start) * thick).sum(-1)  # cell by cell: no cancellation
        outputs = {
            "infiltration": f["top"],
            "runoff": f["runoff"],
            "drainage": f["bottom"],
            "root_water_uptake": f["uptake"],
            "soil_water": (theta * thick).sum(-1),
            "water_balance_error": change / self.dt - (f["top"] - f["bottom"] - f["uptake"]),
            "iterations": f["iterations"],
            "converged": f["converged"],
            "substeps": f["substeps"],
            "smallest_substep": f["smallest_substep"],
        }
        return h, theta, outputs

    def step(self, state, forcing, params):
        """Advance one forcing step (``dt``, 1 d) in sub-steps of at most ``dt / n_substeps``."""
        h, theta, outputs = self._advance(state["pressure_head"], state["water_content"], forcing, params)
        return {"water_content": theta, "pressure_head": h}, outputs
