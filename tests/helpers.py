"""Shared test inputs: random but hydrologically plausible forcing and worked examples."""

import importlib.util
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from difhydro.data import Batch
from difhydro.physics import day_length


def random_forcing(n_days: int, n_basins: int | None = None, seed: int = 0, latitude: float = 45.0):
    """Daily P (mm/d, ~60 % dry days, gamma wet days), T (deg C, seasonal), Lday (h)."""
    rng = np.random.default_rng(seed)
    shape = (n_days,) if n_basins is None else (n_days, n_basins)
    wet = rng.random(shape) < 0.4
    precip = np.where(wet, rng.gamma(0.8, 8.0, shape), 0.0)
    doy = (np.arange(n_days) % 365) + 1
    season = -np.cos(2 * np.pi * (doy - 15) / 365.0)
    if n_basins is not None:
        season = season[:, None]
    temp = 8.0 + 14.0 * season + rng.normal(0.0, 3.0, shape)
    lday = np.broadcast_to(np.asarray(day_length(latitude, doy)).reshape((-1,) + (1,) * (len(shape) - 1)), shape)
    return {
        "precipitation": precip.astype(np.float32),
        "temperature": temp.astype(np.float32),
        "day_length": np.array(lday, dtype=np.float32),
    }


# docs/physics.md §5.3 worked example, t = 0..6 (mm and m3 m-3): precipitation,
# evaporation, surface runoff, snow depth, observed and forecast soil moisture
SECTION_5_3 = {
    "p": np.array([0, 5, 12, 2, 0, 0, 8.0]),
    "e": np.array([2, 1.5, 1, 2.5, 3, 3.2, 1]),
    "sro": np.array([0, 0.2, 2, 0.1, 0, 0, 0.8]),
    "sd": np.array([5, 5, 3, 0, 0, 0, 0.0]),
    "sm": np.array([0.30, 0.29, 0.31, 0.35, 0.34, 0.32, 0.31]),
    "sm_hat": np.array([np.nan, 0.295, 0.33, 0.36, 0.36, 0.325, 0.30]),
}


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example_script(name: str):
    """Import ``examples/<name>.py`` as a module (the examples are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def soil_batch(inputs, forcing=None, targets=None, static=None):
    """A full :class:`~difhydro.data.Batch` around ``inputs`` [B, L, F] (every day scored)."""
    b, length = inputs.shape[:2]
    targets = {"sm_10": jnp.zeros((b, length))} if targets is None else targets
    masks = {k: jnp.ones((b, length), bool) for k in targets}
    return Batch(forcing or {}, inputs, jnp.zeros((b, 0)), targets, masks, static or {},
                 jnp.arange(b), jnp.zeros(b, jnp.int32))


def train_config_run(folder: Path, config: dict) -> Path:
    """Write ``config`` to ``folder/<name>.yml``, run ``difhydro train`` on it into
    ``folder/run`` (asserting exit 0) and return the run folder."""
    import yaml

    from difhydro.experiment.cli import main as difhydro

    path = folder / f"{config['name']}.yml"
    path.write_text(yaml.safe_dump(config))
    assert difhydro(["train", str(path), "--out", str(folder / "run"), "--quiet"]) == 0
    return folder / "run"
