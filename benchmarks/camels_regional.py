"""The main job: physics-aware regional models against a pure LSTM, gauged and ungauged.

A thin wrapper over ``difhydro train`` (see ``difhydro/experiment``): it trains and
evaluates every model of the registry (Jiang et al.'s regional hybrid and its
pseudo-regional variant, the regional LSTM of Kratzert et al., dPL -> HBV in the δHBV
setting, dPL -> EXP-HYDRO, and both process models calibrated per basin) in the gauged
(``temporal``) and ungauged (``kfold``) evaluation, and writes one run directory with
``metrics.csv``, ``predictions.nc``, ``summary.md`` and figures.

With no arguments it runs ``difhydro train benchmarks/configs/small.yml`` (about 20
basins, under 10 minutes on 2 CPU cores) on ``$DIFHYDRO_DATA_DIR``, else on the data beside
the checkout (``../shared/data``, passed as ``--data-dir``: this script looks for it, the
package does not), else on the synthetic twin, and says which in its first lines. ``--config smoke|small|full|regional`` (or a YAML path) picks another preset;
the other options are those of ``difhydro train``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from difhydro.experiment.cli import main as difhydro
from difhydro.experiment.cli import relaunch_with_huge_pages

CONFIGS = Path(__file__).resolve().parent / "configs"
#: the shared data beside the checkout (CAMELS-US and Caravan subsets)
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def default_data_dir(environ=None) -> str | None:
    """``../shared/data`` beside the checkout when neither ``--data-dir`` nor
    ``$DIFHYDRO_DATA_DIR`` says where the data are (``None``: the command decides)."""
    environ = os.environ if environ is None else environ
    if environ.get("DIFHYDRO_DATA_DIR") or not SHARED_DATA.is_dir():
        return None
    return str(SHARED_DATA)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="small", help="smoke, small, full, regional or a YAML file (default: small)")
    p.add_argument("--out", help="run directory (default: runs/<name>_<timestamp>)")
    p.add_argument("--data-dir", help="CAMELS-US, Caravan or generic folder (default: $DIFHYDRO_DATA_DIR, "
                                      "then ../shared/data beside the checkout, else the synthetic twin)")
    p.add_argument("--basin-file")
    p.add_argument("--models", help="comma-separated subset of the configured models")
    p.add_argument("--resume", metavar="RUN_DIR")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    config = CONFIGS / f"{args.config}.yml" if (CONFIGS / f"{args.config}.yml").is_file() else Path(args.config)
    if not args.data_dir and not args.resume:
        args.data_dir = default_data_dir()
        if args.data_dir:
            print(f"camels_regional: no --data-dir and no $DIFHYDRO_DATA_DIR: using the shared data beside the "
                  f"checkout, {args.data_dir}")
    command = ["train"] + ([] if args.resume else [str(config)])
    for flag in ("out", "data_dir", "basin_file", "models", "resume"):
        if getattr(args, flag):
            command += [f"--{flag.replace('_', '-')}", getattr(args, flag)]
    if args.quiet:
        command.append("--quiet")
    if argv is None:  # from the command line: train on huge pages, as the difhydro command does
        relaunch_with_huge_pages(command)
    return difhydro(command)


if __name__ == "__main__":
    sys.exit(main())
