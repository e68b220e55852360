"""Run directories: created safely, recognised by a marker, written atomically.

A run directory is a folder that difhydro created for one experiment. Its marker file
``.difhydro-run.json`` holds the difhydro version, the creation time and the hash of the
resolved config. The rules, which protect users' files:

- a folder that does not exist, or exists and is empty, becomes a run directory;
- an existing run directory is reused only to resume or evaluate it;
- a non-empty folder without the marker (or a file) is refused, and nothing in it changes;
- difhydro writes only inside its run directories, each file atomically (written beside,
  then renamed), and never deletes a file it did not create;
- an evaluation folder is never overwritten (:func:`claim_folder`);
- the data files a run read are recorded with their size and SHA-256
  (:func:`data_checksums`), and a resumed run refuses data that changed since
  (:func:`changed_data_file`).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from .._files import atomic_write_text

__all__ = ["MARKER", "RunDirError", "is_run_dir", "create_run_dir", "read_marker", "default_run_dir", "write_json",
           "check_new_run_dir", "check_parent", "claim_folder", "sha256", "data_checksums", "changed_data_file"]

MARKER = ".difhydro-run.json"


class RunDirError(ValueError):
    """A run directory cannot be used as asked (one line saying why; nothing was changed)."""


def is_run_dir(path: str | Path) -> bool:
    return (Path(path) / MARKER).is_file()


def read_marker(path: str | Path) -> dict:
    path = Path(path)
    if not is_run_dir(path):
        raise RunDirError(f"{path} is not a difhydro run directory (no {MARKER})")
    try:
        return json.loads((path / MARKER).read_text())
    except (OSError, ValueError) as err:
        raise RunDirError(f"{path / MARKER} cannot be read ({type(err).__name__}: {err}); nothing was changed") from None


def default_run_dir(name: str, root: str | Path = "runs") -> Path:
    """``runs/<name>_<YYYYmmdd-HHMMSS>`` (a new folder; a suffix avoids collisions)."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(root) / f"{name}_{stamp}"
    k = 1
    while path.exists():
        path = Path(root) / f"{name}_{stamp}_{k}"
        k += 1
    return path


def check_parent(path: str | Path, option: str = "--out") -> Path:
    """Raise unless every existing ancestor of ``path`` is a folder (so that it can be created)."""
    path = Path(path)
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise RunDirError(f"{option} {path}: {parent} is a file, not a folder; choose a path below a folder")
            break
    return path


def check_new_run_dir(path: str | Path) -> Path:
    """Raise unless ``path`` may become a new run directory (absent or an empty folder)."""
    path = check_parent(path)
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


def claim_folder(parent: str | Path, name: str | None, default: str = "default") -> Path:
    """Create and return a new folder ``parent/name``; never an existing one.

    An explicit ``name`` that exists is refused; without one the folder is ``default``,
    else ``default-2``, ``default-3``, ... (created with ``mkdir``, so two processes never
    get the same one)."""
    parent = check_parent(Path(parent) / (name or default), "--name").parent
    parent.mkdir(parents=True, exist_ok=True)
    if name is not None:
        try:
            (parent / name).mkdir()
        except FileExistsError:
            raise RunDirError(f"--name {name}: {parent / name} exists; difhydro does not overwrite it "
                              "(choose another --name, or none for a new one)") from None
        return parent / name
    k = 1
    while True:
        path = parent / (default if k == 1 else f"{default}-{k}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            k += 1


def sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def data_checksums(root: str | Path, files: Iterable[str | Path]) -> dict[str, dict]:
    """``relative path -> {"size": bytes, "sha256": hex}`` of ``files`` below ``root``."""
    root = Path(root)
    out = {}
    for path in sorted(Path(p) for p in files):
        rel = str(path.relative_to(root)) if path.is_absolute() else str(path)
        full = root / rel
        out[rel] = {"size": full.stat().st_size, "sha256": sha256(full)}
    return out


def changed_data_file(root: str | Path, recorded: Mapping[str, Mapping]) -> str | None:
    """The first recorded data file that is gone or whose size or SHA-256 differs, as a
    line saying how; ``None`` when every file is as recorded."""
    root = Path(root)
    for rel, want in sorted(recorded.items()):
        path = root / rel
        if not path.is_file():
            return f"{path} is gone"
        size = path.stat().st_size
        if size != want["size"]:
            return f"{path} changed (size {size} bytes, was {want['size']})"
        if sha256(path) != want["sha256"]:
            return f"{path} changed (its SHA-256 differs from the one recorded when the run started)"
    return None
