"""The Trainer's loop: monitor direction, validation schedule, early stopping, output lines,
log.csv and the warm-up mask of evaluation.

Most tests script the validation scores (``Trainer.evaluate`` replaced on the instance) so
that which epoch is best is known exactly; the parameters it was called with are recorded
to check that ``best_params`` are that epoch's.
"""

import csv
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from difhydro.data import fit_normalization, fulda_twin, make_basin_data
from difhydro.hybrid import RegionalLSTM
from difhydro.physics import ExpHydro
from difhydro.training import TrainConfig, Trainer, metrics
from difhydro.training.trainer import epoch_line, improves

ATTRS = [f"attribute_{k}" for k in range(5)]
INPUTS = ["precipitation", "temperature", "day_length"]


@pytest.fixture(scope="module")
def data():
    ds = fulda_twin(ExpHydro(), n_basins=4, seed=4, noise=0.05)
    period = ("1979-01-01", "1980-12-31")
    stats = fit_normalization(ds, INPUTS, ATTRS, period)
    train = make_basin_data(ds, stats, period, window=120, warmup=30)
    val = make_basin_data(ds, stats, ("1981-01-01", "1981-12-31"), window=120, warmup=60)
    return train, val


def _config(**kw):
    return TrainConfig(**{"epochs": 3, "steps_per_epoch": 2, "batch_size": 4, "learning_rate": 1e-2,
                          "progress": False, **kw})


def _scripted(trainer, values):
    """Replace ``trainer.evaluate``: the i-th call returns ``values[i]`` as every metric's
    (one-basin) score and as the loss; returns the list of copied parameters it saw."""
    seen = []

    def evaluate(params, data, output=None):
        seen.append(jax.tree.map(np.array, params))
        v = values[len(seen) - 1]
        return {"loss": v, **{m: np.array([v]) for m in trainer.config.validation_metrics}}

    trainer.evaluate = evaluate
    return seen


def _same(a, b):
    return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _model():
    return RegionalLSTM(hidden_size=4, dropout_rate=0.0)


def test_every_metric_has_a_direction():
    assert set(metrics.DIRECTION) == set(metrics.METRICS)
    assert {metrics.DIRECTION[m] for m in ("nse", "kge", "mnse", "r")} == {"max"}
    assert metrics.DIRECTION["rmse"] == "min"
    assert metrics.DIRECTION["fhv"] == metrics.DIRECTION["pfab"] == "zero"
    assert improves(-2.0, -30.0, "zero") and not improves(5.0, -2.0, "zero")
    assert improves(1.0, 3.0, "min") and improves(3.0, 1.0, "max") and not improves(float("nan"), None, "max")


@pytest.mark.parametrize("monitor, values, best_epoch", [
    ("rmse", [3.0, 1.0, 2.0], 2),     # maximising kept epoch 1, the worst
    ("fhv", [-30.0, 5.0, -2.0], 3),   # maximising kept epoch 2 (+5 %), not the -2 % of epoch 3
    ("nse", [0.2, 0.7, 0.5], 2),
    ("loss", [0.9, 0.4, 0.6], 2),
])
def test_the_best_epoch_follows_the_monitors_direction(data, monitor, values, best_epoch):
    train, val = data
    trainer = Trainer(_model(), train, _config(monitor=monitor, eval_metrics=("nse",)), validation=val)
    seen = _scripted(trainer, values)
    result = trainer.fit()
    assert result["best_epoch"] == best_epoch and result["best_score"] == values[best_epoch - 1]
    assert _same(result["best_params"], seen[best_epoch - 1])
    assert not _same(seen[0], seen[1]) and not _same(seen[1], seen[2])  # the epochs' parameters differ
    assert [row[trainer.config.monitor_column] for row in result["history"]] == values


def test_patience_counts_validations_in_the_monitors_direction(data):
    train, val = data
    # rmse 3, 1, 2, 1.5, ...: no improvement after epoch 2, patience 2 stops after epoch 4
    trainer = Trainer(_model(), train, _config(epochs=6, monitor="rmse", patience=2), validation=val)
    seen = _scripted(trainer, [3.0, 1.0, 2.0, 1.5, 0.5, 0.4])
    result = trainer.fit()
    assert len(result["history"]) == 4 and result["stopped_early"]
    assert result["best_epoch"] == 2 and _same(result["best_params"], seen[1])


def test_a_monitor_outside_the_evaluation_metrics_is_evaluated(data):
    train, val = data
    cfg = _config(epochs=3, steps_per_epoch=3, monitor="rmse", eval_metrics=("nse",))
    trainer = Trainer(_model(), train, cfg, validation=val)
    result = trainer.fit()
    rmse = [row["val_median_rmse"] for row in result["history"]]
    assert all(np.isfinite(rmse)) and all("val_median_nse" in row for row in result["history"])
    assert result["best_epoch"] == int(np.argmin(rmse)) + 1
    # the best parameters score that smallest median RMSE again
    again = trainer.evaluate(result["best_params"], val)
    assert float(np.nanmedian(again["rmse"])) == pytest.approx(min(rmse), rel=1e-6)


def test_an_unknown_monitor_fails_at_construction_naming_it():
    with pytest.raises(ValueError, match=r"monitor 'nse_median' is unknown; accepted: loss, nse, kge"):
        TrainConfig(monitor="nse_median")
    with pytest.raises(ValueError, match="validate_every"):
        TrainConfig(validate_every=0)
    with pytest.raises(ValueError, match="eval_metrics.*'kge2'"):
        TrainConfig(eval_metrics=("nse", "kge2"))


def test_validate_every_sets_the_validated_epochs_and_patience_counts_validations(data, tmp_path):
    train, val = data
    cfg = _config(epochs=7, validate_every=2, monitor="nse", eval_metrics=("nse", "kge"), patience=2)
    trainer = Trainer(_model(), train, cfg, validation=val, run_dir=tmp_path)
    seen = _scripted(trainer, [0.5, 0.4, 0.3, 0.9])
    result = trainer.fit()
    history = result["history"]
    # validations after epochs 2, 4, 6; the 2nd and 3rd did not improve: stop after epoch 6
    assert [row["epoch"] for row in history if "val_loss" in row] == [2, 4, 6]
    assert len(history) == 6 and len(seen) == 3 and result["stopped_early"]
    assert result["best_epoch"] == 2 and _same(result["best_params"], seen[0])
    with open(tmp_path / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["val_median_nse"] for r in rows] == ["", "0.5", "", "0.4", "", "0.3"]
    assert {"val_loss", "val_median_kge", "train_loss"} <= set(rows[0])


def test_the_last_epoch_is_always_validated(data):
    train, val = data
    trainer = Trainer(_model(), train, _config(epochs=5, validate_every=3), validation=val)
    _scripted(trainer, [0.5, 0.4])
    history = trainer.fit()["history"]
    assert [row["epoch"] for row in history if "val_loss" in row] == [3, 5]


def test_one_readable_line_per_epoch_and_one_when_stopping(data, capsys):
    train, val = data
    cfg = _config(epochs=4, monitor="nse", eval_metrics=("nse", "fhv"), patience=1, progress=True)
    trainer = Trainer(_model(), train, cfg, validation=val)
    _scripted(trainer, [0.5812, 0.4])
    trainer.fit()
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3, lines
    number = r"[-+.\deE]+"
    assert re.fullmatch(rf"epoch 1/4  loss {number}  val loss 0\.5812  val NSE 0\.5812  \d+\.\d s  \(best\)", lines[0])
    assert re.fullmatch(rf"epoch 2/4  loss {number}  val loss 0\.4  val NSE 0\.4  \d+\.\d s", lines[1])
    assert lines[2] == "early stopping after epoch 2/4: val NSE did not improve in 1 validation(s); best 0.5812 at epoch 1"
    assert "{" not in "".join(lines)


def test_epoch_line_without_validation_and_with_another_monitor():
    row = {"epoch": 3, "train_loss": 0.31234, "seconds": 12.04}
    assert epoch_line(row, 10) == "epoch 3/10  loss 0.3123  12.0 s"
    row.update(val_loss=0.2, val_median_nse=0.58, val_median_fhv=-3.25)
    assert epoch_line(row, 10, "fhv", best=True) == "epoch 3/10  loss 0.3123  val loss 0.2  val NSE 0.58  val FHV -3.25  12.0 s  (best)"


def test_resume_keeps_the_best_epoch_of_the_first_run(data, tmp_path):
    train, val = data
    first = Trainer(_model(), train, _config(epochs=2, monitor="rmse"), validation=val, run_dir=tmp_path)
    seen = _scripted(first, [1.0, 2.0])
    first.fit()
    resumed = Trainer(_model(), train, _config(epochs=4, monitor="rmse"), validation=val, run_dir=tmp_path)
    _scripted(resumed, [1.5, 1.2])
    result = resumed.fit(resume=True)
    assert [row["val_median_rmse"] for row in result["history"]] == [1.0, 2.0, 1.5, 1.2]
    assert result["best_epoch"] == 1 and _same(result["best_params"], seen[0])


def test_a_run_that_stopped_early_stays_stopped_on_resume(data, tmp_path):
    train, val = data
    cfg = _config(epochs=4, monitor="rmse", patience=1)
    first = Trainer(_model(), train, cfg, validation=val, run_dir=tmp_path)
    seen = _scripted(first, [1.0, 2.0])
    assert first.fit()["stopped_early"]
    resumed = Trainer(_model(), train, cfg, validation=val, run_dir=tmp_path)
    assert _scripted(resumed, []) == []
    result = resumed.fit(resume=True)
    assert result["stopped_early"] and len(result["history"]) == 2 and int(result["state"]["step"]) == 4
    assert result["best_epoch"] == 1 and _same(result["best_params"], seen[0])


class _SpoiledWarmup(nn.Module):
    """Predicts the observation exactly, plus ``spoil`` on the first ``days`` of the sequence."""

    days: int
    spoil: float = 100.0

    @nn.compact
    def __call__(self, batch, deterministic=True):
        scale = self.param("scale", nn.initializers.ones_init(), ())
        q = scale * batch.targets["streamflow"]
        return {"streamflow": q + self.spoil * (jnp.arange(q.shape[1]) < self.days)}


def test_evaluate_scores_only_the_days_after_the_warm_up(data):
    train, val = data
    trainer = Trainer(_SpoiledWarmup(val.warmup), train, _config(eval_metrics=("nse", "rmse", "fhv")))
    params = trainer.init_state()["params"]
    pred, _ = trainer.predict(params, val)
    assert np.all(pred["streamflow"][:, : val.warmup] >= 100.0)  # the warm-up days are spoiled
    scores = trainer.evaluate(params, val)
    np.testing.assert_array_equal(scores["nse"], 1.0)
    np.testing.assert_array_equal(scores["rmse"], 0.0)
    np.testing.assert_array_equal(scores["fhv"], 0.0)
    assert scores["loss"] == 0.0
    # one spoiled day more and every score notices
    spoiled = Trainer(_SpoiledWarmup(val.warmup + 1), train, _config(eval_metrics=("nse",)))
    assert np.all(spoiled.evaluate(params, val)["nse"] < 0.99) and spoiled.evaluate(params, val)["loss"] > 0


# -- weight decay and input noise (TrainConfig.weight_decay, TrainConfig.input_noise) ---------


def test_weight_decay_on_a_zero_gradient_shrinks_parameters_by_lr_times_wd_per_step():
    lr, wd = 0.01, 0.1
    tx = TrainConfig(learning_rate=lr, weight_decay=wd, schedule="constant").optimizer()
    params = {"w": jnp.array([1.0, -2.0, 0.5]), "b": jnp.array(3.0)}
    state = tx.init(params)
    for _ in range(3):  # Adam's moments stay 0 on a zero gradient: only the decay moves the parameters
        updates, state = tx.update(jax.tree.map(jnp.zeros_like, params), state, params)
        params = jax.tree.map(lambda p, u: p + u, params, updates)
    np.testing.assert_allclose(params["w"], np.array([1.0, -2.0, 0.5]) * (1 - lr * wd) ** 3, rtol=1e-6)
    np.testing.assert_allclose(params["b"], 3.0 * (1 - lr * wd) ** 3, rtol=1e-6)


def test_weight_decay_first_step_is_the_adamw_formula():
    # step 1 of AdamW: m_hat = g, v_hat = g^2, p1 = p0 - lr (g / (|g| + eps) + wd p0)
    lr, wd, eps = 0.05, 0.2, 1e-8
    p0, g = np.array([1.5, -0.4], np.float32), np.array([0.3, -0.2], np.float32)  # |g| < clip_norm
    tx = TrainConfig(learning_rate=lr, weight_decay=wd, schedule="constant").optimizer()
    updates, _ = tx.update(jnp.asarray(g), tx.init(jnp.asarray(p0)), jnp.asarray(p0))
    np.testing.assert_allclose(p0 + np.asarray(updates), p0 - lr * (g / (np.abs(g) + eps) + wd * p0), atol=1e-6)
    plain = TrainConfig(learning_rate=lr, schedule="constant").optimizer()
    updates, _ = plain.update(jnp.asarray(g), plain.init(jnp.asarray(p0)), jnp.asarray(p0))
    np.testing.assert_allclose(p0 + np.asarray(updates), p0 - lr * g / (np.abs(g) + eps), atol=1e-6)


@pytest.mark.parametrize("key, value", [("weight_decay", -1e-4), ("input_noise", -0.1), ("input_noise", float("nan")),
                                        ("weight_decay", True)])
def test_negative_or_non_finite_regularisation_is_refused_naming_the_key(key, value):
    with pytest.raises(ValueError, match=key):
        TrainConfig(**{key: value})


def test_the_defaults_train_the_same_parameters_as_plain_adam_without_noise(data):
    import optax

    train, _ = data
    cfg = _config(epochs=1, steps_per_epoch=3, clip_norm=1.0)
    default = Trainer(_model(), train, cfg).fit()["params"]
    adam = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(cfg.learning_rate))
    assert _same(default, Trainer(_model(), train, cfg, optimizer=adam).fit()["params"])  # bit-identical
    decayed = Trainer(_model(), train, _config(epochs=1, steps_per_epoch=3, weight_decay=0.5)).fit()["params"]
    noisy = Trainer(_model(), train, _config(epochs=1, steps_per_epoch=3, input_noise=0.5)).fit()["params"]
    assert not _same(default, decayed) and not _same(default, noisy)


def test_input_noise_has_the_requested_std_in_a_training_batch_only(data):
    from difhydro.data.batching import sample_batch
    from difhydro.training.trainer import training_batch

    train, val = data
    key = jax.random.PRNGKey(7)
    clean = sample_batch(jax.random.split(key)[0], train, 64)
    assert _same(training_batch(key, train, 64), clean)  # no noise: the very batch of sample_batch
    noisy = training_batch(key, train, 64, input_noise=0.3)
    diff = np.asarray(noisy.inputs - clean.inputs)
    # 64 x 120 x 3 = 23 040 draws: the sample std is within ~1 % (3 standard errors) of 0.3
    assert diff.std() == pytest.approx(0.3, rel=0.015) and abs(diff.mean()) < 0.01
    for part in ("forcing", "targets", "masks", "attributes", "basin", "start"):
        assert _same(getattr(noisy, part), getattr(clean, part)), part  # only the network inputs move
    # evaluation sees no noise: the same parameters score identically with and without the setting
    params = Trainer(_model(), train, _config()).init_state()["params"]
    quiet = Trainer(_model(), train, _config()).evaluate(params, val)
    loud = Trainer(_model(), train, _config(input_noise=1.0)).evaluate(params, val)
    for name in quiet:
        np.testing.assert_array_equal(quiet[name], loud[name])
