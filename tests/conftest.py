"""Shared fixtures: where the real data lives, and float64 on demand."""

import os
from pathlib import Path

import jax
import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """``$DIFHYDRO_DATA_DIR`` or ``<repo>/../shared/data`` (the CAMELS-US subset for CI)."""
    return Path(os.environ.get("DIFHYDRO_DATA_DIR", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    d = shared_data_dir()
    if not d.is_dir():
        pytest.skip(f"shared data not found at {d}; set DIFHYDRO_DATA_DIR")
    return d


@pytest.fixture
def x64():
    """Run the test body in float64 without leaking the setting into other tests."""
    with jax.enable_x64(True):
        yield


def _subset(data_dir: Path, name: str, marker: str) -> Path:
    root = data_dir / name
    if not (root / marker).exists():
        pytest.skip(f"{name} subset not found at {root}")
    return root


@pytest.fixture(scope="session")
def camels(data_dir) -> Path:
    """The shared CAMELS-US subset (original layout)."""
    return _subset(data_dir, "camels_us", "basin_mean_forcing")


@pytest.fixture(scope="session")
def caravan(data_dir) -> Path:
    """The shared Caravan subset (230 basins, CSV)."""
    return _subset(data_dir, "camels_caravan", "timeseries/csv/camels")
