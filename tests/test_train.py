"""The Trainer: learning, exact resume, sharding, configuration errors."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from difhydro.data import fit_normalization, fulda_twin, make_basin_data
from difhydro.hybrid import DifferentiableParameterLearning, RegionalLSTM
from difhydro.physics import HBV, ExpHydro
from difhydro.training import TrainConfig, Trainer

ATTRS = [f"attribute_{k}" for k in range(5)]
INPUTS = ["precipitation", "temperature", "day_length"]


@pytest.fixture(scope="module")
def twin():
    return fulda_twin(ExpHydro(), n_basins=12, seed=4, noise=0.05)


def _data(ds, period, basins=None, window=730, warmup=365, stats=None):
    stats = stats or fit_normalization(ds, INPUTS, ATTRS, period, basins=basins)
    return make_basin_data(ds, stats, period, window=window, warmup=warmup, basins=basins), stats


def test_a_tiny_batch_can_be_overfitted(twin):
    # one admissible window (the whole period) of 2 basins: every step sees the same batch
    basins = [str(b) for b in twin.basin.values[:2]]
    data, _ = _data(twin, ("1985-01-01", "1985-12-31"), basins, window=365, warmup=30)
    cfg = TrainConfig(epochs=1, steps_per_epoch=600, batch_size=2, learning_rate=1e-2, progress=False)
    trainer = Trainer(RegionalLSTM(hidden_size=32, dropout_rate=0.0), data, cfg, loss="nse_star")
    first = trainer.train_step(trainer.init_state())[1]
    result = trainer.fit()
    scores = trainer.evaluate(result["params"], data)
    assert scores["loss"] < 0.1 * float(first)
    assert np.all(scores["nse"] > 0.85), scores["nse"]


def test_resume_from_checkpoint_is_bit_identical(twin, tmp_path):
    data, stats = _data(twin, ("1979-01-01", "1986-12-31"))
    cfg = dict(steps_per_epoch=5, batch_size=4, learning_rate=1e-3, progress=False, seed=3)
    model = DifferentiableParameterLearning(ExpHydro(), hidden_sizes=(8,))
    straight = Trainer(model, data, TrainConfig(epochs=4, **cfg)).fit()
    # "kill" after two epochs: a first run that stops, then a fresh Trainer that resumes
    Trainer(model, data, TrainConfig(epochs=2, **cfg), run_dir=tmp_path, norm_stats=stats).fit()
    resumed = Trainer(model, data, TrainConfig(epochs=4, **cfg), run_dir=tmp_path, norm_stats=stats).fit(resume=True)
    for a, b in zip(jax.tree.leaves(straight["params"]), jax.tree.leaves(resumed["params"])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert int(resumed["state"]["step"]) == 20
    rows = (tmp_path / "log.csv").read_text().strip().splitlines()
    assert len(rows) == 5 and rows[0].startswith("epoch")
    assert json.loads((tmp_path / "norm_stats.json").read_text())["mean"]["precipitation"] > 0


def test_validation_early_stopping_and_metrics(twin, tmp_path):
    train, stats = _data(twin, ("1979-01-01", "1985-12-31"))
    val, _ = _data(twin, ("1986-01-01", "1988-12-31"), stats=stats)
    cfg = TrainConfig(epochs=6, steps_per_epoch=15, batch_size=8, learning_rate=1e-2, patience=1,
                      monitor="nse", progress=False)
    result = Trainer(DifferentiableParameterLearning(ExpHydro(), hidden_sizes=(16,)), train, cfg,
                     validation=val, run_dir=tmp_path).fit()
    history = result["history"]
    assert {"val_loss", "val_median_nse", "val_median_kge"} <= set(history[0])
    # learning happens: the median validation NSE improves on the first epoch's
    assert max(h["val_median_nse"] for h in history) > history[0]["val_median_nse"]
    # and patience 1 stops one epoch after the first non-improving epoch
    best = int(np.argmax([h["val_median_nse"] for h in history]))
    assert len(history) <= best + 2


def test_bad_configuration_fails_before_compiling(twin):
    data, _ = _data(twin, ("1979-01-01", "1986-12-31"))
    with pytest.raises(ValueError, match="pet"):  # HBV needs PET, the data has none
        Trainer(DifferentiableParameterLearning(HBV()), data, TrainConfig(batch_size=4, progress=False))
    with pytest.raises(ValueError, match="multiple of"):
        Trainer(RegionalLSTM(hidden_size=4), data, TrainConfig(batch_size=3, progress=False),
                mesh=jax.sharding.Mesh(np.array(jax.devices() * 2)[:2], ("basin",)))
    with pytest.raises(ValueError, match="unknown loss"):
        Trainer(RegionalLSTM(hidden_size=4), data, TrainConfig(batch_size=4, progress=False), loss="kge_loss")
    with pytest.raises(ValueError, match="attribute_9"):
        stats = fit_normalization(twin, INPUTS, ATTRS, ("1979-01-01", "1986-12-31"))
        make_basin_data(twin, stats, ("1979-01-01", "1986-12-31"), window=730, warmup=365, static=["attribute_9"])


# the twin, the data and a loop of training steps, shared by the device and process scripts
TWIN_STEPS = textwrap.dedent(
    """
    import json, sys, jax, numpy as np
    from difhydro.data import fit_normalization, fulda_twin, make_basin_data
    from difhydro.hybrid import HybridPRNN
    from difhydro.physics import ExpHydro
    from difhydro.training import TrainConfig, Trainer, basin_mesh
    ds = fulda_twin(ExpHydro(), n_basins=6, seed=5)
    attrs = [f"attribute_{k}" for k in range(5)]
    period = ("1979-01-01", "1986-12-31")
    stats = fit_normalization(ds, ["precipitation", "temperature", "day_length"], attrs, period)
    data = make_basin_data(ds, stats, period, window=500, warmup=200)

    def run(steps, mesh=None):
        cfg = TrainConfig(epochs=1, steps_per_epoch=steps, batch_size=8, learning_rate=3e-3, progress=False)
        trainer = Trainer(HybridPRNN(mode="regional"), data, cfg, mesh=mesh)
        state, losses = trainer.init_state(), []
        for _ in range(steps):
            state, loss = trainer.train_step(state)
            losses.append(float(loss))
        return {"losses": losses, "params": [np.asarray(x).ravel().tolist() for x in jax.tree.leaves(state["params"])]}
    """
)

SHARDED = TWIN_STEPS + textwrap.dedent(
    """
    assert jax.device_count() == 2, jax.devices()
    out = {name: run(6, basin_mesh(devices)) for name, devices in (("one", jax.devices()[:1]), ("two", jax.devices()))}
    json.dump(out, sys.stdout)
    """
)


def test_sharded_step_on_two_cpu_devices_matches_one_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", SHARDED], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(out["two"]["losses"], out["one"]["losses"], rtol=1e-4)
    for a, b in zip(out["two"]["params"], out["one"]["params"]):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


@pytest.mark.slow
def test_regional_dpl_recovers_held_out_basins_parameters():
    ds = fulda_twin(ExpHydro(), n_basins=40, seed=2, noise=0.05)
    basins = [str(b) for b in ds.basin.values]
    period = ("1979-01-01", "1988-12-31")
    train, stats = _data(ds, period, basins[:30], window=3 * 365, warmup=730)
    held_out, _ = _data(ds, period, basins[30:], window=3 * 365, warmup=730, stats=stats)
    model = DifferentiableParameterLearning(ExpHydro(), hidden_sizes=(32, 32))
    cfg = TrainConfig(epochs=8, steps_per_epoch=50, batch_size=16, learning_rate=1e-2, schedule="cosine", progress=False)
    trainer = Trainer(model, train, cfg, loss="mse")
    params = trainer.fit()["params"]
    assert np.median(trainer.evaluate(params, held_out)["nse"]) > 0.8
    learned = trainer.predict(params, held_out)[0]["params"]
    r2 = {}
    for k in ExpHydro.param_spec:
        truth = ds[f"param_{k}"].sel(basin=basins[30:]).values
        est = np.asarray(learned[k])
        r2[k] = 1 - np.sum((est - truth) ** 2) / np.sum((truth - truth.mean()) ** 2)
    print("held-out parameter R2:", {k: round(float(v), 3) for k, v in r2.items()})
    # the baseflow decline rate controls the recession and is identifiable from flow alone
    assert r2["f"] > 0.6



DISTRIBUTED = textwrap.dedent(
    """
    import sys, jax
    pid, n, port = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    if n > 1:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(coordinator_address=f"localhost:{port}", num_processes=n, process_id=pid)
    """
) + TWIN_STEPS + textwrap.dedent(
    """
    assert jax.device_count() == n and jax.local_device_count() == 1
    result = run(4)  # the default mesh spans both processes' devices
    print("RESULT " + json.dumps(result), flush=True)
    if n > 1:
        jax.distributed.shutdown()
    """
)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # integration: kept out of the 10-minute CI run (pytest -m slow)
def test_two_processes_through_jax_distributed_match_one_process(tmp_path):
    """jax.distributed.initialize on two local processes (CPU collectives over gloo): the
    basin axis of every batch is split between the processes, and the losses and the
    parameters equal those of one process."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    single = subprocess.run([sys.executable, "-c", DISTRIBUTED, "0", "1", "0"], capture_output=True, text=True,
                            env=env, timeout=600)
    port = str(_free_port())
    logs = [(tmp_path / f"out{i}.txt", tmp_path / f"err{i}.txt") for i in range(2)]
    procs = []
    for i, (out, err) in enumerate(logs):  # files, not pipes: a full pipe would block a process at a collective
        with open(out, "w") as o, open(err, "w") as e:
            procs.append(subprocess.Popen([sys.executable, "-c", DISTRIBUTED, str(i), "2", port], stdout=o, stderr=e,
                                          env=env))
    for p in procs:
        p.wait(timeout=600)
    outs = [(out.read_text(), err.read_text()) for out, err in logs]

    def result(stdout):
        return json.loads(next(line for line in stdout.splitlines() if line.startswith("RESULT "))[7:])

    assert single.returncode == 0, single.stderr[-2000:]
    one = result(single.stdout)
    for proc, (stdout, stderr) in zip(procs, outs):
        assert proc.returncode == 0, stderr[-2000:]
        two = result(stdout)
        np.testing.assert_allclose(two["losses"], one["losses"], rtol=1e-5)
        for a, b in zip(two["params"], one["params"]):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
