"""Run directories: created safely, recognised by a marker, written atomically.

A run directory is a folder that difhydro created for one experiment. Its marker file
``.difhydro-run.json`` holds the difhydro version, the creation time and the hash of the
resolved config. The rules, which protect users' files:

- a folder that does not exist, or exists and is empty, becomes a run directory;
- an existing run directory is reused only to resume or evaluate it;
- a non-empty folder without the marker (or a file) is refused, and nothing in it changes;
- difhydro writes only inside its run directories, each file atomically (written beside,
  then renamed), and never deletes a file it did not create.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

from .._files import atomic_write_text

__all__ = ["MARKER", "RunDirError", "is_run_dir", "create_run_dir", "read_marker", "default_run_dir", "write_json"]

MARKER = ".difhydro-run.json"


class RunDirError(ValueError):
    """A run directory cannot be used as asked (one line saying why; nothing was changed)."""


def is_run_dir(path: str | Path) -> bool:
    return (Path(path) / MARKER).is_file()


def read_marker(path: str | Path) -> dict:
    path = Path(path)
    if not is_run_dir(path):
        raise RunDirError(f"{path} is not a difhydro run directory (no {MARKER})")
    return json.loads((path / MARKER).read_text())


def default_run_dir(name: str, root: str | Path = "runs") -> Path:
    """``runs/<name>_<YYYYmmdd-HHMMSS>`` (a new folder; a suffix avoids collisions)."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(root) / f"{name}_{stamp}"
    k = 1
    while path.exists():
        path = Path(root) / f"{name}_{stamp}_{k}"
        k += 1
    return path


def check_new_run_dir(path: str | Path) -> Path:
    """Raise unless ``path`` may become a new run directory (absent or an empty folder)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"--out {path} is a file; give a folder")
    if is_run_dir(path):
        raise RunDirError(f"--out {path} is already a difhydro run directory; continue it with "
                          f"'difhydro train --resume {path}' or choose another --out")
    if path.is_dir() and any(path.iterdir()):
        raise RunDirError(f"--out {path} is a non-empty folder that difhydro did not create; nothing was changed "
                          f"(choose a new or empty folder)")
    return path


def create_run_dir(path: str | Path, config_hash: str, version: str) -> Path:
    """Make ``path`` a run directory (see :func:`check_new_run_dir`) and write its marker."""
    path = check_new_run_dir(path)
    path.mkdir(parents=True, exist_ok=True)
    write_json(path / MARKER, {"difhydro": version, "created": _dt.datetime.now().isoformat(timespec="seconds"),
                               "config_hash": config_hash})
    return path


def write_json(path: str | Path, data) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    return atomic_write_text(path, json.dumps(data, indent=1, default=str) + "\n")
