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
