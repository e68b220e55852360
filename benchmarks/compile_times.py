"""Compilation of every model's training step, cold and from JAX's persistent cache.

``python benchmarks/compile_times.py [--data-dir ../shared/data/camels_caravan]``

Runs ``difhydro train`` twice, in fresh processes, on the shapes of
``benchmarks/configs/regional.yml`` (batch 128, 270-day windows, the regional model sizes)
with a few basins and steps, both runs sharing one new, empty compilation cache
(``DIFHYDRO_CACHE_DIR``). The first run compiles from nothing; the second finds the
compiled programs in the cache. For each model it prints the first training step's extra
time over the median step (``compile_seconds`` of ``metrics.csv``: tracing plus compiling,
or tracing plus loading from the cache) for both runs. Target: under 10 s cold.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import processor  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 10.0


def config(regional: dict, basins: int) -> dict:
    """``regional.yml`` cut to ``basins`` basins, the gauged test, three steps per model."""
    cfg = {k: v for k, v in regional.items() if k not in ("peers", "kfold_models")}
    cfg["name"] = "compile_times"
    cfg["data"] = {**regional["data"], "basins": basins}
    cfg["evaluations"] = ["temporal"]
    cfg["training"] = {**regional["training"], "epochs": 1, "steps_per_epoch": 3, "calibration_steps": 3}
    cfg["models"] = {name: {k: v for k, v in (opts or {}).items() if k != "training"}
                     for name, opts in regional["models"].items()}
    return cfg


def train(cfg_path: Path, data_dir: str, out: Path, cache: Path) -> tuple[pd.DataFrame, float]:
    env = {**os.environ, "DIFHYDRO_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "difhydro", "train", str(cfg_path), "--data-dir", data_dir,
                           "--out", str(out), "--quiet"], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"difhydro train failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    metrics = pd.read_csv(out / "metrics.csv", dtype={"basin": str})
    return metrics.groupby("model")["compile_seconds"].first(), seconds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "camels_caravan"))
    p.add_argument("--basins", type=int, default=8)
    args = p.parse_args(argv)
    regional = yaml.safe_load((ROOT / "benchmarks" / "configs" / "regional.yml").read_text())
    print(f"processor: {processor()}; load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="difhydro_compile_") as tmp:
        tmp = Path(tmp)
        cfg_path = tmp / "compile_times.yml"
        cfg_path.write_text(yaml.safe_dump(config(regional, args.basins), sort_keys=False))
        cold, cold_total = train(cfg_path, args.data_dir, tmp / "cold", tmp / "cache")
        warm, warm_total = train(cfg_path, args.data_dir, tmp / "warm", tmp / "cache")
    table = pd.DataFrame({"cold_s": cold, "cached_s": warm})
    print(f"\nfirst training step's extra time over the median step (s), regional shapes "
          f"(batch {regional['training']['batch_size']}, window {regional['training']['window']} days)")
    print(f"{'model':<22} {'cold':>8} {'cached':>8}")
    for name, row in table.iterrows():
        print(f"{name:<22} {row.cold_s:8.1f} {row.cached_s:8.1f}")
    trained = table.dropna()
    worst = trained.cold_s.max() if len(trained) else float("nan")
    print(f"\nslowest cold compilation {worst:.1f} s (target < {TARGET_SECONDS:.0f} s: "
          f"{'met' if worst < TARGET_SECONDS else 'not met'}); whole command {cold_total:.0f} s cold, "
          f"{warm_total:.0f} s with the cache")
    return 0


if __name__ == "__main__":
    sys.exit(main())
