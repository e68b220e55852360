"""Richards1D's time-step control (issue 21): sub-steps halve where Newton fails, the states
stay in their box, the gradient of the accepted steps matches finite differences.

The full 96-case grid (12 Carsel & Parrish textures x dry/wet starts x 4 storms) is the
script ``benchmarks/richards_box_grid.py``; here a few representative cases run fast.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from difhydro.physics import Richards1D, RichardsSolver, simulate

# Carsel & Parrish (1988)
SAND = {"theta_r": 0.045, "theta_s": 0.43, "alpha": 0.145, "n": 2.68, "k_s": 712.8}
LOAM = {"theta_r": 0.078, "theta_s": 0.43, "alpha": 0.036, "n": 1.56, "k_s": 24.96}
SILT_LOAM = {"theta_r": 0.067, "theta_s": 0.45, "alpha": 0.020, "n": 1.41, "k_s": 10.8}
CLAY_LOAM = {"theta_r": 0.095, "theta_s": 0.41, "alpha": 0.019, "n": 1.31, "k_s": 6.24}
THICK = (5.0,) * 8 + (10.0,) * 2
SLACK = 1e-5  # float32 round-off of the flux update


def _run(model, soils, h0, rain, tp, dtype=jnp.float32):
    """``soils``: per profile a dict of scalars or of per-layer lists; returns numpy outputs
    ``[time, profile]``, the initial storage and the per-layer parameters ``[profile, layer]``."""
    n = len(model.thickness)
    params = {k: jnp.asarray([np.broadcast_to(np.asarray(s[k], float), n) for s in soils], dtype) for k in LOAM}
    soil = model.soil(params)
    h = jnp.asarray([[v] * n for v in h0], dtype)
    state0 = {"pressure_head": h, "water_content": soil.water_content(h)}
    forcing = {"precipitation": jnp.asarray(rain, dtype), "potential_transpiration": jnp.asarray(tp, dtype)}
    out = jax.jit(lambda p, s, f: simulate(model, p, f, state0=s, check=False)[1])(params, state0, forcing)
    s0 = (np.asarray(state0["water_content"], np.float64) * np.asarray(model.thickness)).sum(-1)
    return {k: np.asarray(v, np.float64) for k, v in out.items()}, s0, {k: np.asarray(v) for k, v in params.items()}


def _box_violations(out, s0, params, rain):
    """Messages for every state or flux out of its box (empty: all in)."""
    theta = out["water_content"]
    problems = []
    below = theta < params["theta_r"][None] - SLACK
    above = theta > params["theta_s"][None] + SLACK
    if below.any() or above.any():
        problems.append(f"theta out of [theta_r, theta_s] in profiles {sorted(set(np.nonzero(below | above)[1]))}")
    inf = out["infiltration"]
    if (inf < -1e-6).any() or (inf > rain * (1 + 1e-6) + 1e-6).any():
        problems.append("infiltration out of [0, rain]")
    storage = np.concatenate([s0[None], out["soil_water"]])
    balance = np.diff(storage, axis=0) - (inf - out["drainage"] - out["root_water_uptake"])
    if (np.abs(balance) > np.maximum(1e-3 * rain, 1e-3)).any():
        problems.append(f"balance error {np.abs(balance).max():.3g} cm")
    if (out["converged"] < 1).any():
        problems.append(f"{int((out['converged'] < 1).sum())} profile-days not converged")
    return problems


# dry and wet starts, storms 2-30 cm/d for 3 days then 2 dry days with transpiration
_CASES = [(SAND, -30.0, 30.0), (LOAM, -30.0, 30.0), (SILT_LOAM, -1000.0, 10.0), (CLAY_LOAM, -1000.0, 5.0),
          ({k: [SILT_LOAM[k]] * 5 + [SAND[k]] * 5 for k in LOAM}, -1000.0, 30.0)]  # layered: capillary barrier


def _storms(cases):
    storm = np.array([c[2] for c in cases])
    rain = np.concatenate([np.tile(storm, (3, 1)), np.zeros((2, len(cases)))])
    tp = np.concatenate([np.zeros((3, len(cases))), np.full((2, len(cases)), 0.5)])
    return rain, tp


@pytest.mark.parametrize("air_entry", [-2.0, 0.0])
def test_storms_stay_in_the_box_and_converge(air_entry):
    """With the default air-entry curve and with the plain van Genuchten curve, whose
    steep K near saturation needs the shorter steps."""
    rain, tp = _storms(_CASES)
    model = Richards1D(thickness=THICK, air_entry=air_entry)
    out, s0, params = _run(model, [c[0] for c in _CASES], [c[1] for c in _CASES], rain, tp)
    assert _box_violations(out, s0, params, rain) == []
    # the dry days keep the nominal steps
    np.testing.assert_array_equal(out["substeps"][3:], model.n_substeps)
    if air_entry == 0.0:  # the storms needed shorter steps
        assert out["substeps"][:3].max() > model.n_substeps
        assert out["smallest_substep"][:3].min() < model.dt / model.n_substeps


def test_fixed_substeps_leave_the_box_on_the_same_storms():
    """The same storms on the plain curve without the time-step control (the solver before
    issue 21): some day stays unconverged, so the test above can fail."""
    rain, tp = _storms(_CASES)
    model = Richards1D(thickness=THICK, max_halvings=0, air_entry=0.0)
    out, s0, params = _run(model, [c[0] for c in _CASES], [c[1] for c in _CASES], rain, tp)
    problems = _box_violations(out, s0, params, rain)
    assert any("not converged" in p for p in problems), problems


def _box(name, u):
    spec = Richards1D.param_spec[name]
    if name in ("k_s", "alpha"):  # log-uniform over the box
        return float(np.exp(np.log(spec.low) + (np.log(spec.high) - np.log(spec.low)) * u))
    return spec.low + (spec.high - spec.low) * u


_soil = st.lists(st.floats(0.0, 1.0), min_size=5, max_size=5)


@settings(max_examples=6, deadline=None, derandomize=True, phases=(Phase.generate,))  # no shrinking: a slow case
@given(top=_soil, bottom=_soil, dry=st.booleans(), storm=st.floats(2.0, 30.0), layered=st.booleans())
def test_box_holds_over_the_parameter_box(top, bottom, dry, storm, layered):
    """Soils drawn over the parameter box (n >= 1.3: see docs/physics.md for the steeper
    Mualem curves), layered or not, dry or wet start, a 2-day storm then a dry day."""
    def soil(u):
        s = {k: _box(k, ui) for k, ui in zip(Richards1D.param_spec, u)}
        s["n"] = max(s["n"], 1.3)
        return s

    upper, lower = soil(top), soil(bottom if layered else top)
    layers = {k: [upper[k]] * 5 + [lower[k]] * 5 for k in LOAM}
    rain = np.array([[storm], [storm], [0.0]])
    tp = np.array([[0.0], [0.0], [0.5]])
    out, s0, params = _run(Richards1D(thickness=THICK), [layers], [-1000.0 if dry else -30.0], rain, tp)
    assert _box_violations(out, s0, params, rain) == []


def test_perched_zone_over_a_tight_layer_fills_and_drains():
    """The parameter-box case that failed before the semismooth step across h_s
    (docs/physics.md 3.8): a coarse layer (alpha 0.002, Ks 321 cm/d) over a tight one (Ks
    0.1 cm/d), 24 cm/d for two days. The coarse layer saturates, the surface ponds and on
    the dry day the perched zone drains from the top. Before, every day failed at the
    smallest step (theta out of the box, balance error 0.01 cm)."""
    top = {"theta_r": 0.0, "theta_s": 0.5216, "alpha": 0.002, "n": 1.544, "k_s": 320.83}
    tight = {"theta_r": 0.1211, "theta_s": 0.3, "alpha": 0.1933, "n": 1.8456, "k_s": 0.1}
    layers = {k: [top[k]] * 5 + [tight[k]] * 5 for k in LOAM}
    rain, tp = np.array([[24.08], [24.08], [0.0]]), np.array([[0.0], [0.0], [0.5]])
    model = Richards1D(thickness=THICK)
    out, s0, params = _run(model, [layers], [-30.0], rain, tp)
    assert _box_violations(out, s0, params, rain) == []
    assert out["substeps"].max() <= 2 * model.n_substeps  # never down to the smallest steps
    assert (out["runoff"][:2] > 20.0).all()  # ponded: the tight layer takes < 4 cm/d
    # end of day 2: the saturated coarse layer under a ponded surface (h = 0) carries ~0.1
    # cm/d at K ~ 300 cm/d, so its heads are hydrostatic, h = depth of the cell centre
    h = _heads_after(model, layers, -30.0, rain[:2], tp[:2])
    np.testing.assert_allclose(h[:5], [2.5, 7.5, 12.5, 17.5, 22.5], atol=0.05)


def _heads_after(model, layers, h0, rain, tp):
    n = len(model.thickness)
    params = {k: jnp.asarray([layers[k]], jnp.float32) for k in LOAM}
    h = jnp.full((1, n), h0, jnp.float32)
    state0 = {"pressure_head": h, "water_content": model.soil(params).water_content(h)}
    forcing = {"precipitation": jnp.asarray(rain, jnp.float32), "potential_transpiration": jnp.asarray(tp, jnp.float32)}
    state = simulate(model, params, forcing, state0=state0, check=False)[0]
    return np.asarray(state["pressure_head"])[0]


def test_gradient_of_a_storm_day_matches_finite_differences():
    """float64, a dry sand under 10 cm/d (the sub-steps halve): the gradient through the
    accepted steps equals central differences, also when the day is recomputed in the
    backward pass because it had more accepted steps than the forward pass stored."""
    with jax.enable_x64(True):
        model = Richards1D(thickness=(5.0, 5.0, 10.0, 15.0), n_substeps=2)
        n = len(model.thickness)
        base = {k: jnp.full((n,), v, jnp.float64) for k, v in SAND.items()}
        h = jnp.full((n,), -1000.0, jnp.float64)
        forcing = {"precipitation": jnp.array([10.0, 0.0]), "potential_transpiration": jnp.array([0.0, 0.4])}

        def loss(model, p):
            state0 = {"pressure_head": h, "water_content": model.soil(p).water_content(h)}
            out = simulate(model, p, forcing, state0=state0, check=False)[1]
            return out["soil_water"][0] + 3.0 * out["drainage"].sum() + out["runoff"].sum() \
                + out["root_water_uptake"].sum() + out["water_content"][-1, 1]

        state0 = {"pressure_head": h, "water_content": model.soil(base).water_content(h)}
        out = simulate(model, base, forcing, state0=state0, check=False)[1]
        assert float(out["substeps"][0]) > 3 and float(out["converged"].min()) == 1.0  # the control acted
        grads = jax.jit(jax.grad(lambda p: loss(model, p)))(base)
        few = Richards1D(thickness=model.thickness, n_substeps=2, stored_substeps=3)
        grads_few = jax.jit(jax.grad(lambda p: loss(few, p)))(base)
        f = jax.jit(lambda p: loss(model, p))
        rng = np.random.default_rng(3)
        for name in base:
            direction = jnp.asarray(rng.normal(size=n))
            eps = 1e-6 * float(jnp.abs(base[name]).max())
            plus, minus = {**base, name: base[name] + eps * direction}, {**base, name: base[name] - eps * direction}
            fd = (f(plus) - f(minus)) / (2 * eps)
            ad = float(jnp.vdot(grads[name], direction))
            assert np.isfinite(ad)
            assert ad == pytest.approx(float(fd), rel=1e-4, abs=1e-7), name
            np.testing.assert_allclose(np.asarray(grads_few[name]), np.asarray(grads[name]), rtol=1e-10, atol=1e-14)


def test_vmap_equals_the_batch():
    rain, tp = _storms(_CASES[:2])
    model = Richards1D(thickness=THICK)
    params = {k: jnp.asarray([[c[0][k]] for c in _CASES[:2]], jnp.float32) for k in LOAM}
    forcing = {"precipitation": jnp.asarray(rain, jnp.float32), "potential_transpiration": jnp.asarray(tp, jnp.float32)}
    batch = simulate(model, params, forcing, check=False)[1]
    mapped = jax.vmap(lambda p, f: simulate(model, p, f, check=False)[1], in_axes=(0, 1), out_axes=1)(params, forcing)
    for k in ("soil_water", "infiltration", "substeps"):
        np.testing.assert_allclose(np.asarray(mapped[k]), np.asarray(batch[k]), rtol=1e-5, atol=1e-6)


def test_solver_settings_live_in_one_validated_module():
    solver = RichardsSolver(n_iter=7, tol=1e-5)
    a, b = Richards1D(solver=solver), Richards1D(n_iter=7, tol=1e-5)
    assert a == b and a.n_iter == 7 and a.solver.tol == 1e-5
    with pytest.raises(TypeError, match="n_iters"):
        Richards1D(n_iters=3)
    with pytest.raises(ValueError, match="not both"):
        Richards1D(solver=solver, n_iter=3)
    with pytest.raises(ValueError, match="max_halvings"):
        RichardsSolver(max_halvings=-1)
    assert not Richards1D(tol=None).solver.adaptive and Richards1D().solver.adaptive
