"""The main job in its smoke setting on the shared CAMELS subset: outputs exist and are sane."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import camels_regional  # noqa: E402


@pytest.mark.slow
def test_smoke_preset_on_shared_camels(data_dir, tmp_path):
    root = data_dir / "camels_us"
    if not root.is_dir():
        pytest.skip(f"CAMELS-US subset not found at {root}")
    table = camels_regional.main(["--preset", "smoke", "--data-dir", str(root), "--out", str(tmp_path), "--quiet"])
    for name in ("metrics.csv", "summary.md", "predictions.nc", "nse_cdf_temporal.png", "nse_cdf_kfold.png",
                 "hydrographs_temporal.png"):
        assert (tmp_path / name).is_file(), name
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    trained = set(camels_regional.MODELS)
    # every model ran in the gauged evaluation; calibration is reported as not applicable to ungauged basins
    assert set(metrics[metrics.evaluation == "temporal"].model) == trained
    assert set(metrics[metrics.evaluation == "kfold"].model) == trained - set(camels_regional.CALIBRATED)
    assert np.isfinite(metrics.nse).all() and np.isfinite(metrics.kge).all()
    # each basin is a test basin in exactly one fold
    kfold = metrics[metrics.evaluation == "kfold"]
    assert kfold.groupby("model").basin.nunique().eq(kfold.basin.nunique()).all()
    # the regional LSTM beats the mean-flow benchmark (NSE 0) on the gauged test period
    assert metrics[(metrics.evaluation == "temporal") & (metrics.model == "lstm")].nse.median() > 0
    summary = (tmp_path / "summary.md").read_text()
    assert "not applicable" in summary and "| temporal | hybrid |" in summary
    with xr.open_dataset(tmp_path / "predictions.nc") as pred:
        assert set(pred.model.values) == trained
        sim = pred.simulated_streamflow.sel(evaluation="temporal", model="lstm")
        assert np.isfinite(sim).all()
        assert np.isfinite(pred.hybrid_snow_storage.sel(evaluation="temporal")).all()
