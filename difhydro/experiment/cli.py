"""The ``difhydro`` command (also ``python -m difhydro``): a thin layer over the Python API.

::

    difhydro train CONFIG.yml [--out RUN_DIR] [--data-dir DIR] [--basin-file FILE] [--models a,b]
    difhydro train --resume RUN_DIR [CONFIG.yml]
    difhydro evaluate RUN_DIR [--data-dir DIR] [--basin-file FILE] [--period START:END] [--name NAME] [--assimilate N]
    difhydro predict RUN_DIR --data-dir DIR [--basin-file FILE] --period START:END --out FILE.nc
                     [--hot-start FILE.nc | --assimilate N]
    difhydro finetune RUN_DIR --out NEW_RUN [--config FILE.yml] [--period START:END] [--basin-file FILE]
                      [--parts all|head|parameter_network]
    difhydro config               # every config key with its default
    difhydro --version

Every input error is one line on stderr naming the option or key and the accepted form,
with exit status 2; a run in which any model failed exits with status 1. The help, the
config listing and every check of the config and of the options (:func:`check_arguments`)
run before JAX, Flax or xarray are imported: a mistake is reported at once.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .. import __version__

__all__ = ["main", "check_arguments", "relaunch_with_huge_pages"]

#: glibc tunable that makes malloc ask for transparent huge pages (glibc >= 2.35)
HUGE_PAGES_TUNABLE = "glibc.malloc.hugetlb=1"


def huge_pages_environment(environ=None) -> dict[str, str] | None:
    """``environ`` with glibc's malloc on transparent huge pages, or ``None`` if there is nothing to do.

    XLA allocates its temporaries afresh every training step; on 4 KiB pages that is ~2e5
    page faults per regional-LSTM step (docs/speed.md). glibc reads the tunable only at
    process start, so the command re-launches itself with it. ``None`` when the tunable is
    already set, when ``DIFHYDRO_HUGE_PAGES=0`` switches it off, when glibc is older than
    2.35 or not glibc, or when the kernel's transparent huge pages are ``never``.
    """
    environ = dict(os.environ if environ is None else environ)
    tunables = environ.get("GLIBC_TUNABLES", "")
    if "glibc.malloc.hugetlb" in tunables or environ.get("DIFHYDRO_HUGE_PAGES", "1") == "0":
        return None
    try:
        name, release = os.confstr("CS_GNU_LIBC_VERSION").split()
        if name != "glibc" or tuple(int(x) for x in release.split(".")[:2]) < (2, 35):
            return None
        if "[never]" in Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text():
            return None
    except (AttributeError, OSError, ValueError):
        return None
    environ["GLIBC_TUNABLES"] = f"{tunables}:{HUGE_PAGES_TUNABLE}" if tunables else HUGE_PAGES_TUNABLE
    return environ


def relaunch_with_huge_pages(argv: list[str]) -> None:
    """Replace this process by ``python -m difhydro ARGV`` on huge pages (see
    :func:`huge_pages_environment`); returns only when there is nothing to do.

    Only the allocator changes, so results stay bit-identical to the Python API's. XLA
    flags that change the generated code (``--xla_cpu_prefer_vector_width=512``, 4-6 %
    faster on AVX-512, docs/speed.md) change the last bits too and are left to the user.
    """
    environ = huge_pages_environment()
    if environ is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "difhydro", *argv], environ)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit status 2, as argparse does, but without the usage block
        sys.stderr.write(f"difhydro: {message}\n")
        raise SystemExit(2)


_ASSIMILATE = ("also the one-day-ahead forecasts <model>_assimilated of the process models, their states updated "
               "every day over the last N days of observed flow")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="difhydro", description="Differentiable hydrology: train, evaluate and reuse models.")
    p.add_argument("--version", action="version", version=f"difhydro {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    t = sub.add_parser("train", help="train the configured models into a run directory")
    t.add_argument("config", nargs="?", help="YAML config (see 'difhydro config')")
    t.add_argument("--out", help="run directory (default: runs/<name>_<timestamp>)")
    t.add_argument("--data-dir", help="data folder (CAMELS-US, Caravan or a generic folder)")
    t.add_argument("--basin-file", help="basins to use, one id per line")
    t.add_argument("--models", help="comma-separated subset of the configured models")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run (refused if the config changed)")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.add_argument("--distributed", action="store_true",
                   help="join a jax.distributed job detected from SLURM, Open MPI or a TPU pod (docs/scale.md)")
    t.add_argument("--coordinator", metavar="HOST:PORT", help="address of process 0 of a jax.distributed job")
    t.add_argument("--num-processes", type=int, help="processes of the jax.distributed job")
    t.add_argument("--process-id", type=int, help="this process's index in the jax.distributed job")
    e = sub.add_parser("evaluate", help="score a run's models on any basins and period")
    e.add_argument("run_dir")
    e.add_argument("--data-dir")
    e.add_argument("--basin-file")
    e.add_argument("--period", help="START:END (default: the run's test period)")
    e.add_argument("--name", help="evaluation/<NAME> folder of the run directory (default: default, default-2, ...: "
                                  "an evaluation is never overwritten)")
    e.add_argument("--models", help="comma-separated subset")
    e.add_argument("--assimilate", type=int, metavar="N", help=_ASSIMILATE)
    e.add_argument("--quiet", action="store_true")
    r = sub.add_parser("predict", help="predict streamflow without observations")
    r.add_argument("run_dir")
    r.add_argument("--data-dir", required=True)
    r.add_argument("--basin-file")
    r.add_argument("--period", required=True, help="START:END")
    r.add_argument("--out", required=True, help="netCDF file to write (must not exist)")
    r.add_argument("--hot-start", help="a previous predict output: start the process models from its final states")
    r.add_argument("--models", help="comma-separated subset")
    r.add_argument("--assimilate", type=int, metavar="N", help=_ASSIMILATE + " (the data need streamflow)")
    r.add_argument("--quiet", action="store_true")
    f = sub.add_parser("finetune", help="continue training parts of a run's models into a NEW run directory")
    f.add_argument("run_dir", help="the source run (only read)")
    f.add_argument("--out", required=True, help="the new run directory (absent or empty)")
    f.add_argument("--config", help="YAML whose data, periods and training replace the source run's")
    f.add_argument("--period", help="new training period START:END")
    f.add_argument("--basin-file", help="fine-tuning basins, one id per line")
    f.add_argument("--holdout-file", help="basins scored but not trained on (ungauged for the fine-tuned run)")
    f.add_argument("--parts", default="all", choices=("all", "head", "parameter_network"),
                   help="what trains; the rest stays bit-identical (default: all)")
    f.add_argument("--epochs", type=int, help="training epochs (default: the config's)")
    f.add_argument("--data-dir")
    f.add_argument("--models", help="comma-separated subset of the run's trained models")
    f.add_argument("--quiet", action="store_true")
    sub.add_parser("config", help="list every config key with its default and meaning")
    return p


def _enable_compilation_cache() -> None:
    """JAX's persistent compilation cache: a second run skips compilation."""
    import jax

    folder = os.environ.get("DIFHYDRO_CACHE_DIR", str(Path.home() / ".cache" / "difhydro" / "jax"))
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def main(argv=None) -> int:
    """Run the command; ``argv`` defaults to the command line, and then the work runs on
    huge pages (:func:`relaunch_with_huge_pages`) once the arguments passed their checks."""
    args = _parser().parse_args(argv)
    # every difhydro input error is a ValueError (ConfigError, RunDirError, DataError, ...)
    expected = (ValueError, FileNotFoundError)
    try:
        if args.command == "config":
            from .config import describe

            print(describe())
            return 0
        check_arguments(args)  # before JAX, Flax or xarray are imported
        if argv is None:
            relaunch_with_huge_pages(sys.argv[1:])
        _enable_compilation_cache()
        if args.command == "train":
            return _train(args)
        if args.command == "evaluate":
            return _evaluate(args)
        if args.command == "finetune":
            return _finetune(args)
        return _predict(args)
    except expected as err:
        message = str(err).strip().splitlines()
        sys.stderr.write(f"difhydro {args.command}: {message[0] if message else type(err).__name__}\n")
        for line in message[1:8]:
            sys.stderr.write(f"  {line}\n")
        return 2


def _existing(path, option: str, kind: str = "file") -> Path:
    path = Path(path)
    if not (path.is_file() if kind == "file" else path.is_dir()):
        raise FileNotFoundError(f"{option} {path}: no such {kind}")
    return path


def check_arguments(args) -> None:
    """Every check of the command's arguments that needs no data: the config with the
    command-line overrides (train) or the run's config (evaluate, predict), ``--models``
    against those models, ``--period``, ``--name``, the files and folders named, ``--out``.
    Imports no JAX, Flax or xarray; raises a ValueError (or FileNotFoundError) in one line."""
    from .config import check_name, load_config, parse_period, select_models
    from .rundir import check_new_run_dir, check_parent, read_marker

    if args.command != "train":
        read_marker(args.run_dir)
    if args.data_dir:
        _existing(args.data_dir, "--data-dir", "folder")
    if args.basin_file:
        _existing(args.basin_file, "--basin-file")
    if args.command == "train":
        _check_job(args)
        if not args.config and not args.resume:
            raise ValueError("train needs a CONFIG.yml (or --resume RUN_DIR)")
        if args.resume and args.out:
            raise ValueError("--out and --resume exclude each other (the run continues in RUN_DIR)")
        if args.resume:
            read_marker(args.resume)
        overrides = {"data.dir": str(Path(args.data_dir).expanduser().resolve())} if args.data_dir else {}
        cfg = load_config(args.config or Path(args.resume) / "config.yml", overrides)
        select_models(cfg, args.models)
        basins = cfg.data.basins
        if not args.basin_file and isinstance(basins, str) and basins != "all" and not Path(basins).is_file():
            raise FileNotFoundError(f"data.basins: basin file {basins} not found (or give 'all', a number or a list)")
        if args.out and not _in_job(args):  # in a job, process 0 may have made it already
            check_new_run_dir(args.out)
        return
    select_models(load_config(Path(args.run_dir) / "config.yml"), args.models, of=f"the run {args.run_dir}")
    if args.command == "finetune":
        _check_finetune(args)
        return
    if getattr(args, "assimilate", None) is not None and args.assimilate < 1:
        raise ValueError(f"--assimilate: the window must be >= 1 day, got {args.assimilate}")
    if args.period is not None:
        parse_period(args.period, "--period")
    if args.command == "evaluate":
        if args.name is not None:
            check_name(args.name, "--name")
        return
    out = Path(args.out)
    if out.exists():
        raise ValueError(f"--out {out} exists; difhydro does not overwrite files it may not have created")
    if out.suffix != ".nc":
        raise ValueError(f"--out {out}: give a netCDF file name ending in .nc")
    check_parent(out, "--out")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"--out {out}: the folder {out.parent} does not exist")
    if args.hot_start:
        _existing(args.hot_start, "--hot-start")
        if args.assimilate is not None:
            raise ValueError("--assimilate and --hot-start exclude each other (the state update starts from the "
                             "spin-up before the period)")


def _check_finetune(args) -> None:
    """--out a new folder (never the source), --config / --period, the files, --epochs."""
    from .config import load_config, parse_period
    from .rundir import check_new_run_dir

    if Path(args.out).resolve() == Path(args.run_dir).resolve():
        raise ValueError("--out: the fine-tuned run must be a new directory, never the source run")
    check_new_run_dir(args.out)
    if args.config and args.period:
        raise ValueError("--config and --period exclude each other (the config's periods are used)")
    if args.config:
        load_config(_existing(args.config, "--config"))
    if args.period is not None:
        parse_period(args.period, "--period")
    if args.holdout_file:
        _existing(args.holdout_file, "--holdout-file")
    if args.epochs is not None and args.epochs < 1:
        raise ValueError(f"--epochs: must be >= 1, got {args.epochs}")
    if not (args.config or args.period or args.basin_file):
        raise ValueError("finetune needs new data: --config, --period and/or --basin-file")


def _in_job(args) -> bool:
    return bool(args.distributed or args.coordinator or args.num_processes is not None or args.process_id is not None)


def _check_job(args) -> None:
    """The options of a jax.distributed job: all three together (or --distributed), in range."""
    manual = (args.coordinator, args.num_processes, args.process_id)
    if args.distributed or all(v is None for v in manual):
        return
    if any(v is None for v in manual):
        raise ValueError("--coordinator, --num-processes and --process-id go together (or use --distributed)")
    if args.num_processes < 1:
        raise ValueError(f"--num-processes: must be >= 1, got {args.num_processes}")
    if not 0 <= args.process_id < args.num_processes:
        raise ValueError(f"--process-id: must lie in [0, --num-processes) = [0, {args.num_processes}), "
                         f"got {args.process_id}")


def _join_job(args) -> None:
    """``jax.distributed.initialize`` before any computation (CPU collectives over gloo)."""
    if not _in_job(args):
        return
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if args.distributed:
        jax.distributed.initialize()
    else:
        jax.distributed.initialize(coordinator_address=args.coordinator, num_processes=args.num_processes,
                                   process_id=args.process_id)


def _train(args) -> int:
    from .run import train_run

    _join_job(args)
    run_dir, table, failures = train_run(args.config, args.out, data_dir=args.data_dir, basin_file=args.basin_file,
                                         models=args.models, resume=args.resume, progress=not args.quiet)
    if (Path(run_dir) / "summary.md").is_file():
        print((Path(run_dir) / "summary.md").read_text())
    if failures:
        sys.stderr.write(f"difhydro train: {len(failures)} model run(s) failed or were not run; see {run_dir}/summary.md\n")
        return 1
    return 0


def _models(text):
    return [m.strip() for m in text.split(",")] if text else None


def _evaluate(args) -> int:
    from .api import load_run

    run = load_run(args.run_dir)
    table = run.evaluate(data_dir=args.data_dir, basin_file=args.basin_file, period=args.period, name=args.name,
                         models=_models(args.models), progress=not args.quiet, assimilate=args.assimilate)
    print((Path(table.attrs["folder"]) / "summary.md").read_text())
    return 0 if len(table) else 1


def _finetune(args) -> int:
    from .finetune import finetune_run

    out, table = finetune_run(args.run_dir, args.out, config=args.config, period=args.period,
                              basin_file=args.basin_file, holdout_file=args.holdout_file, parts=args.parts,
                              models=_models(args.models), epochs=args.epochs, data_dir=args.data_dir,
                              progress=not args.quiet)
    print((Path(out) / "summary.md").read_text())
    return 0 if len(table) else 1


def _predict(args) -> int:
    from .api import load_run
    from .outputs import write_netcdf

    out = Path(args.out)
    ds = load_run(args.run_dir).predict(data_dir=args.data_dir, basin_file=args.basin_file, period=args.period,
                                        hot_start=args.hot_start, models=_models(args.models), progress=not args.quiet,
                                        assimilate=args.assimilate)
    write_netcdf(ds, out)
    print(f"wrote {out}: {ds.sizes['basin']} basins x {ds.sizes['time']} days, models {list(ds.model.values)}")
    return 0
