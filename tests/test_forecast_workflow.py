"""The forecasting workflow on a trained run of the synthetic twin (EXP-HYDRO truth on the
Fulda forcing): ``--assimilate`` beside the open loop, and ``difhydro finetune`` into a new
run that leaves the source byte-identical and its frozen parameters bit-identical."""

import hashlib

import jax
import numpy as np
import pandas as pd
import pytest

from difhydro import load_run
from difhydro.experiment.cli import main as difhydro
from difhydro.experiment.finetune import trainable_labels
from difhydro.experiment.models import load_params
from difhydro.experiment.outputs import open_predictions
from difhydro.forecast import Assimilation
from helpers import train_config_run

CONFIG = {"name": "twin_da", "data": {"format": "twin", "basins": 4}, "evaluations": ["temporal"], "seeds": [0],
          "models": {"dpl_exphydro": {"hidden_size": 4}, "lstm": {"hidden_size": 4}},
          "training": {"epochs": 2, "steps_per_epoch": 4, "batch_size": 4, "window": 120, "warmup": 60}}


@pytest.fixture(scope="module")
def twin_run(tmp_path_factory):
    return train_config_run(tmp_path_factory.mktemp("twin_da"), CONFIG)


def _median(table, model):
    return float(table[table.model == model].nse.median())


def test_assimilate_differs_from_the_open_loop_and_raises_its_nse(twin_run):
    run = load_run(twin_run)
    table = run.evaluate(name="da", assimilate=5, progress=False)
    assert set(table.model) == {"dpl_exphydro", "lstm", "dpl_exphydro_assimilated"}
    ol, da = _median(table, "dpl_exphydro"), _median(table, "dpl_exphydro_assimilated")
    # measured on the 24 twin basins (a barely trained dPL model): open loop -0.87, updated -0.16
    assert da > ol + 0.3, (ol, da)
    # both scored on the same days
    days = table.groupby("model").days.sum()
    assert days["dpl_exphydro"] == days["dpl_exphydro_assimilated"] > 0
    summary = (twin_run / "evaluation" / "da" / "summary.md").read_text()
    assert "lstm_assimilated: not assimilated: a network without process-model states" in summary
    assert "0 with no observation in the window" in summary
    with open_predictions(twin_run / "evaluation" / "da" / "predictions.nc") as ds:
        sim = ds.simulated_streamflow.isel(evaluation=0)
        a, b = sim.sel(model="dpl_exphydro").values, sim.sel(model="dpl_exphydro_assimilated").values
        assert np.isfinite(b).all() and np.abs(a - b).mean() > 0.05 * np.abs(a).mean()
        assert "series_dpl_exphydro_assimilated__soil_storage" in ds


def test_predict_assimilate_labels_the_forecasts_and_refuses_a_hot_start(twin_run, tmp_path):
    run = load_run(twin_run)
    ds = run.predict(period="1986-01-01:1986-12-31", assimilate=Assimilation(window=3, transform="log"),
                     progress=False, log=lambda _: None)
    assert "dpl_exphydro_assimilated" in list(ds.model.values)
    assert "window 3 days" in ds.attrs["assimilation"] and "lstm" in ds.attrs["not_assimilated"]
    with pytest.raises(ValueError, match="--hot-start"):
        run.predict(period="1986-01-01:1986-12-31", assimilate=3, hot_start=tmp_path / "x.nc", progress=False)
    with pytest.raises(ValueError, match="--assimilate"):
        run.predict(period="1986-01-01:1986-12-31", assimilate=0, progress=False)


def _checksums(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_finetune_head_writes_a_new_run_freezes_the_rest_and_leaves_the_source(twin_run, tmp_path):
    before = _checksums(twin_run)
    basins = tmp_path / "basins.txt"
    basins.write_text("twin_0000\ntwin_0001\ntwin_0002\n")
    out = tmp_path / "tuned"
    code = difhydro(["finetune", str(twin_run), "--out", str(out), "--basin-file", str(basins), "--period",
                     "1981-01-01:1984-12-31", "--parts", "head", "--epochs", "2", "--models", "dpl_exphydro",
                     "--quiet"])
    assert code == 0
    assert _checksums(twin_run) == before  # the source run is only read
    src = load_run(twin_run).models()["dpl_exphydro"][0]
    new = load_run(out).models()["dpl_exphydro"][0]
    assert new.info["parts"] == "head" and new.info["basins"] == ["twin_0000", "twin_0001", "twin_0002"]
    template = jax.tree.map(np.asarray, load_params(src.folder / "params", _template(src)))
    tuned = load_params(new.folder / "params", template)
    flat_a, flat_b = jax.tree_util.tree_flatten_with_path(template)[0], jax.tree.leaves(tuned)
    changed = {jax.tree_util.keystr(p): not np.array_equal(np.asarray(a), np.asarray(b))
               for (p, a), b in zip(flat_a, flat_b)}
    assert changed == {"['mlp']['hidden_0']['bias']": False, "['mlp']['hidden_0']['kernel']": False,
                       "['mlp']['hidden_1']['bias']": False, "['mlp']['hidden_1']['kernel']": False,
                       "['mlp']['output']['bias']": True, "['mlp']['output']['kernel']": True}, changed
    table = pd.read_csv(out / "metrics.csv", dtype={"basin": str})
    assert set(table.evaluation) == {"finetuned", "source"}
    assert set(table[table.gauged].basin) == {"twin_0000", "twin_0001", "twin_0002"}
    assert (~table.gauged).sum() > 0  # held-out basins, scored for both
    assert "held-out basins" in (out / "summary.md").read_text()


def _template(saved):
    import orbax.checkpoint as ocp

    meta = ocp.StandardCheckpointer().metadata((saved.folder / "params").resolve())
    tree = getattr(meta, "item_metadata", None) or getattr(meta, "tree", meta)
    tree = getattr(tree, "tree", tree)
    return jax.tree.map(lambda m: np.zeros(m.shape, m.dtype), dict(tree))


def test_trainable_labels_by_part():
    dpl = {"mlp": {"hidden_0": {"kernel": 0}, "output": {"kernel": 0, "bias": 0}}, "prnn": {}}
    lstm = {"lstm": {"cell": {"kernel": 0}, "head": {"kernel": 0}}}

    class Dpl:  # a model with a process model
        model = type("P", (), {"param_spec": {}})()

    class Net:
        pass

    assert trainable_labels(dpl, "head", Dpl())["mlp"] == {"hidden_0": {"kernel": "freeze"},
                                                          "output": {"kernel": "train", "bias": "train"}}
    assert trainable_labels(dpl, "parameter_network", Dpl())["mlp"]["hidden_0"]["kernel"] == "train"
    assert trainable_labels(lstm, "head", Net()) == {"lstm": {"cell": {"kernel": "freeze"},
                                                              "head": {"kernel": "train"}}}
    with pytest.raises(ValueError, match="no process model"):
        trainable_labels(lstm, "parameter_network", Net())
    with pytest.raises(ValueError, match="--parts"):
        trainable_labels(lstm, "everything", Net())
