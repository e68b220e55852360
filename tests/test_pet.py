import numpy as np
import pytest

from difhydro.physics import day_length, extraterrestrial_radiation, hamon_pet, hargreaves_pet


def test_day_length_fao56_reference():
    ref = [11.9598, 12.0136, 12.0674, 12.1212, 12.1749, 12.2286, 12.2823, 12.3360, 12.3896, 12.4431]
    got = np.asarray(day_length(45.0, np.arange(80, 90)))
    np.testing.assert_allclose(got, ref, atol=1e-4)


def test_day_length_polar_clipping_and_equinox_symmetry():
    assert float(day_length(80.0, 172)) == pytest.approx(24.0)
    assert float(day_length(80.0, 355)) == pytest.approx(0.0, abs=1e-6)
    # north and south day lengths add up to 24 h on any day
    np.testing.assert_allclose(
        np.asarray(day_length(40.0, np.arange(1, 366)) + day_length(-40.0, np.arange(1, 366))), 24.0, atol=1e-4
    )


def test_hamon_reference():
    assert float(hamon_pet(20.0, 14.0)) == pytest.approx(3.336, abs=5e-4)


@pytest.mark.parametrize(
    "lat,doy,tmax,tmin,ra,lday,pet,hamon",
    [
        (40.0, 180, 30.0, 15.0, 41.7292, 14.8121, 6.11193, 4.08049),
        (45.0, 80, 6.0, -2.0, 26.5251, 11.9598, 1.39398, 0.914381),
        (60.0, 355, -5.0, -15.0, 2.11636, 5.51304, 0.0489859, 0.178163),
    ],
)
def test_hargreaves_and_hamon_references(lat, doy, tmax, tmin, ra, lday, pet, hamon):
    assert float(extraterrestrial_radiation(lat, doy)) == pytest.approx(ra, rel=1e-5)
    assert float(day_length(lat, doy)) == pytest.approx(lday, rel=1e-5)
    assert float(hargreaves_pet(tmax, tmin, lat, doy)) == pytest.approx(pet, rel=1e-5)
    assert float(hamon_pet(0.5 * (tmax + tmin), day_length(lat, doy))) == pytest.approx(hamon, rel=1e-5)


def test_hargreaves_gradient_finite_when_tmax_equals_tmin():
    import jax

    g = jax.grad(lambda t: hargreaves_pet(t, t, 45.0, 100))(5.0)
    assert np.isfinite(float(g))


def test_oudin_equals_pyet_and_is_jit_able():
    """Oudin PET against pyet.oudin (an independent implementation) over three years of a
    temperature series at three latitudes, in a jit-compiled call; zero below -5 degC."""
    pd = pytest.importorskip("pandas")
    pyet = pytest.importorskip("pyet")
    import jax

    from difhydro.physics import oudin_pet

    index = pd.date_range("2001-01-01", "2003-12-31", freq="D")
    rng = np.random.default_rng(0)
    temp = 8 + 12 * np.sin(2 * np.pi * (index.dayofyear.values - 110) / 365) + rng.normal(0, 3, len(index))
    run = jax.jit(oudin_pet)
    for lat in (-33.0, 40.0, 62.0):
        ref = pyet.oudin(pd.Series(temp, index=index), np.deg2rad(lat)).to_numpy()
        got = np.asarray(run(temp.astype(np.float32), np.float32(lat), index.dayofyear.values.astype(np.float32)))
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
        assert np.all(got[temp <= -5] == 0.0) and np.all(got[temp > -5] > 0.0)
    # gradients are finite on both sides of the -5 degC kink
    g = jax.grad(lambda t: oudin_pet(t, 45.0, 180.0).sum())(np.array([-6.0, -5.0, 0.0, 20.0], np.float32))
    assert np.all(np.isfinite(np.asarray(g))) and float(g[-1]) > 0
