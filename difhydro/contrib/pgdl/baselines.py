"""Tabular baselines of the PGDL comparison: Random Forest and XGBoost on lagged features
(scikit-learn and xgboost are imported lazily: ``pip install -e ".[soil]"``)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["lagged_features", "fit_random_forest", "fit_xgboost"]


def lagged_features(columns: Mapping[str, np.ndarray], lags: int = 7) -> np.ndarray:
    """Stack ``[pixel, time]`` series and their ``lags − 1`` previous days into rows
    ``[pixel, time, n_columns · lags]`` (the first days repeat day 0), the tabular view of
    a ``lags``-day window for RF / XGBoost."""
    feats = []
    for v in columns.values():
        v = np.asarray(v, np.float32)
        for lag in range(lags):
            shifted = np.concatenate([np.repeat(v[:, :1], lag, axis=1), v[:, : v.shape[1] - lag]], axis=1)
            feats.append(shifted)
    return np.stack(feats, axis=-1)


def fit_random_forest(x: np.ndarray, y: np.ndarray, n_estimators: int = 100, seed: int = 0, **kwargs):
    """scikit-learn ``RandomForestRegressor`` (multi-output) on rows ``x [n, F]``, ``y [n, D]``."""
    from sklearn.ensemble import RandomForestRegressor

    model = RandomForestRegressor(n_estimators=n_estimators, min_samples_leaf=5, n_jobs=2, random_state=seed, **kwargs)
    return model.fit(x, y)


def fit_xgboost(x: np.ndarray, y: np.ndarray, n_estimators: int = 300, seed: int = 0, **kwargs):
    """XGBoost ``XGBRegressor`` (hist trees, one model per output) on ``x [n, F]``, ``y [n, D]``."""
    from xgboost import XGBRegressor

    model = XGBRegressor(n_estimators=n_estimators, max_depth=6, learning_rate=0.05, subsample=0.8,
                         tree_method="hist", n_jobs=2, random_state=seed, **kwargs)
    return model.fit(x, y)
