"""The modified van Genuchten-Mualem curve with an air-entry head (Vogel, van Genuchten &
Cislerova 2001; HYDRUS-1D's "air-entry value of -2 cm" model), and what it does to the
Richards solver on the n = 1.09 soils (issue 21, docs/physics.md section 3.8).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from difhydro.physics import Richards1D, simulate
from difhydro.physics.soil_hydraulics import (
    CARSEL_PARRISH,
    VanGenuchten,
    vg_capacity,
    vg_conductivity,
    vg_effective_saturation,
    vg_pressure_head,
    vg_saturation_head,
    vg_water_content,
)

NAMES = ("theta_r", "theta_s", "alpha", "n", "k_s")


def _vogel(h, theta_r, theta_s, alpha, n, k_s, h_s):
    """Independent numpy implementation in the notation of Vogel et al. (2001) and the
    HYDRUS-1D manual: theta_m, the extrapolated saturation, and F(Se*) written as
    [1 - Se*^(1/m)]^m. Returns (theta, K, C) at heads h (float64)."""
    h = np.asarray(h, np.float64)
    m = 1.0 - 1.0 / n
    theta_m = theta_r + (theta_s - theta_r) * (1.0 + abs(alpha * h_s) ** n) ** m
    unsat = h < h_s
    x = np.abs(alpha * np.where(unsat, h, h_s - 1.0))
    theta = np.where(unsat, theta_r + (theta_m - theta_r) / (1.0 + x**n) ** m, theta_s)
    se = (theta - theta_r) / (theta_s - theta_r)
    scale = (theta_s - theta_r) / (theta_m - theta_r)

    def f(se_star):
        return (1.0 - se_star ** (1.0 / m)) ** m

    k = np.where(unsat, k_s * se**0.5 * ((1.0 - f(scale * se)) / (1.0 - f(scale))) ** 2, k_s)
    c = np.where(unsat, (theta_m - theta_r) * alpha * n * m * x ** (n - 1.0) * (1.0 + x**n) ** (-m - 1.0), 0.0)
    return theta, k, c


@pytest.mark.parametrize("texture", ["clay", "loam", "sand"])
def test_air_entry_curve_matches_vogel_et_al(texture):
    p = dict(zip(NAMES, CARSEL_PARRISH[texture]))
    h = np.array([-1.0e5, -3000.0, -150.0, -30.0, -5.0, -2.5, -2.0000001, -2.0, -1.0, 0.0, 4.0])
    with jax.enable_x64(True):
        args = {k: jnp.float64(v) for k, v in p.items()}
        hj = jnp.asarray(h)
        theta = vg_water_content(hj, args["theta_r"], args["theta_s"], args["alpha"], args["n"], air_entry=-2.0)
        k = vg_conductivity(hj, args["alpha"], args["n"], args["k_s"], air_entry=-2.0)
        c = vg_capacity(hj, args["theta_r"], args["theta_s"], args["alpha"], args["n"], air_entry=-2.0)
        ref = _vogel(h, *CARSEL_PARRISH[texture], h_s=-2.0)
        np.testing.assert_allclose(np.asarray(theta), ref[0], rtol=1e-12)
        # the reference's 1 - Se*^(1/m) cancels in very dry soil (the library writes it as w S)
        np.testing.assert_allclose(np.asarray(k)[2:], ref[1][2:], rtol=1e-9)
        np.testing.assert_allclose(np.asarray(k)[:2], ref[1][:2], rtol=1e-3)
        np.testing.assert_allclose(np.asarray(c), ref[2], rtol=1e-9)
        # continuous at h_s: theta -> theta_s and K -> Ks from below
        below = jnp.float64(-2.0 - 1e-9)
        assert float(vg_water_content(below, args["theta_r"], args["theta_s"], args["alpha"], args["n"],
                                      air_entry=-2.0)) == pytest.approx(p["theta_s"], rel=1e-8)
        assert float(vg_conductivity(below, args["alpha"], args["n"], args["k_s"], air_entry=-2.0)) == pytest.approx(
            p["k_s"], rel=1e-6)
        # C is d theta / dh
        hs = jnp.array([-3000.0, -75.0, -2.5])
        eps = 1e-5
        fd = (vg_water_content(hs + eps, *(args[k] for k in NAMES[:4]), air_entry=-2.0)
              - vg_water_content(hs - eps, *(args[k] for k in NAMES[:4]), air_entry=-2.0)) / (2 * eps)
        np.testing.assert_allclose(vg_capacity(hs, *(args[k] for k in NAMES[:4]), air_entry=-2.0), fd, rtol=1e-6, atol=1e-12)
        # the inverse
        back = vg_pressure_head(theta[1:6], *(args[k] for k in NAMES[:4]), air_entry=-2.0)
        np.testing.assert_allclose(np.asarray(back), h[1:6], rtol=1e-8)  # Se >= 1e-6 (section 3.1)


def test_air_entry_zero_is_plain_van_genuchten():
    p = dict(zip(NAMES, CARSEL_PARRISH["clay"]))
    h = np.array([-1.0e4, -300.0, -10.0, -1e-3, 0.0, 2.0])
    with jax.enable_x64(True):
        a = {k: jnp.float64(v) for k, v in p.items()}
        hj = jnp.asarray(h)
        theta, k, c = _vogel(h, *CARSEL_PARRISH["clay"], h_s=0.0)
        np.testing.assert_allclose(vg_water_content(hj, a["theta_r"], a["theta_s"], a["alpha"], a["n"]), theta,
                                   rtol=1e-12)
        np.testing.assert_allclose(vg_conductivity(hj, a["alpha"], a["n"], a["k_s"]), k, rtol=1e-9)
        np.testing.assert_allclose(vg_capacity(hj, a["theta_r"], a["theta_s"], a["alpha"], a["n"]), c, rtol=1e-9)
        # the plain curve's K drops to half of Ks within 1e-3 cm of saturation for n = 1.09,
        # the air-entry curve's is within 2 % of Ks at 1 mm below h_s
        assert float(vg_conductivity(jnp.float64(-1e-3), a["alpha"], a["n"], a["k_s"])) < 0.5 * p["k_s"]
        assert float(vg_conductivity(jnp.float64(-2.1), a["alpha"], a["n"], a["k_s"], air_entry=-2.0)) > 0.98 * p[
            "k_s"]
    assert VanGenuchten(*(jnp.float32(v) for v in p.values())).air_entry == 0.0
    with pytest.raises(ValueError, match="air_entry"):
        VanGenuchten(*(jnp.float32(v) for v in p.values()), air_entry=1.0)
    with pytest.raises(ValueError, match="air_entry"):
        Richards1D(air_entry=0.5)


def test_air_entry_gradients_are_finite_at_and_around_h_s():
    p = dict(zip(NAMES, CARSEL_PARRISH["silty_clay"]))

    def total(params, h):
        soil = VanGenuchten(*params, air_entry=-2.0)
        return soil.water_content(h).sum() + soil.conductivity(h).sum() + soil.capacity(h).sum()

    params = tuple(jnp.float32(v) for v in p.values())
    h = jnp.asarray([-1e6, -100.0, -2.001, -2.0, -1.999, 0.0, 5.0], jnp.float32)
    g_params, g_h = jax.grad(total, argnums=(0, 1))(params, h)
    assert all(np.isfinite(np.asarray(g)).all() for g in g_params) and np.isfinite(np.asarray(g_h)).all()
    assert float(vg_effective_saturation(jnp.float32(-2.0), params[2], params[3], air_entry=-2.0)) == 1.0


def test_saturation_head_keeps_the_digits_of_a_nearly_dry_cell():
    """float32, theta_r = 0.139, h = -796 cm (Se = 0.003): theta - theta_r keeps only a few
    digits, so the inverse through theta is off by 6e-3 cm, more than the last Newton steps
    of a wetting front in the coarse soil above (docs/physics.md 3.8); the inverse through
    Se, which the wetting step of update="mixed" takes, is within 1e-6 of h."""
    p = [jnp.float32(v) for v in (0.1393, 0.3, 0.0844, 2.3819)]
    h = jnp.asarray([-796.0, -300.0, -50.0, -5.0], jnp.float32)
    se = vg_effective_saturation(h, p[2], p[3], -2.0)
    back = np.asarray(vg_saturation_head(se, p[2], p[3], -2.0), np.float64)
    np.testing.assert_allclose(back, np.asarray(h), rtol=1e-6)
    through_theta = np.asarray(vg_pressure_head(vg_water_content(h, *p, -2.0), *p, -2.0), np.float64)
    assert abs(through_theta[0] + 796.0) > 1e-3  # why the step is taken in Se
    # the same function inverts vg_pressure_head's Se
    np.testing.assert_allclose(vg_saturation_head(se, p[2], p[3], -2.0),
                               vg_pressure_head(p[0] + (p[1] - p[0]) * se, *p, -2.0), rtol=1e-4)


def test_clay_storms_converge_with_the_air_entry_and_not_without():
    """Silty clay and clay (n = 1.09) under a storm day, dry and wet starts: every day converges
    and theta stays in its box with the default air-entry head of -2 cm; with the plain
    curve (air_entry=0) some day fails at the smallest step (the 13 cases of the grid)."""
    soils = [CARSEL_PARRISH["silty_clay"], CARSEL_PARRISH["clay"]]
    starts, storm = [-1000.0, -30.0], np.array([5.0, 30.0])
    thick = (5.0,) * 8
    n = len(thick)
    rain = storm[None, :]
    tp = np.zeros((1, 2))
    params = {k: jnp.asarray([[s[j]] * n for s in soils], jnp.float32) for j, k in enumerate(NAMES)}
    forcing = {"precipitation": jnp.asarray(rain, jnp.float32), "potential_transpiration": jnp.asarray(tp, jnp.float32)}

    def run(model):
        h = jnp.asarray([[v] * n for v in starts], jnp.float32)
        state0 = {"pressure_head": h, "water_content": model.soil(params).water_content(h)}
        out = jax.jit(lambda p: simulate(model, p, forcing, state0=state0, check=False)[1])(params)
        return {k: np.asarray(v, np.float64) for k, v in out.items()}

    out = run(Richards1D(thickness=thick, max_halvings=2))
    assert out["converged"].min() == 1.0
    theta = out["water_content"]
    assert (theta <= np.asarray(params["theta_s"])[None] + 1e-5).all()
    assert (theta >= np.asarray(params["theta_r"])[None] - 1e-5).all()
    plain = run(Richards1D(thickness=thick, max_halvings=2, air_entry=0.0))
    assert plain["converged"].min() == 0.0
