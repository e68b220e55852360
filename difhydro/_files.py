"""Atomic file writes: a reader never sees half a file, a failed write leaves the old one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_text", "is_primary", "umask"]


def is_primary() -> bool:
    """False in the processes 1, 2, ... of a ``jax.distributed`` job: only process 0 writes."""
    import jax

    return jax.process_count() == 1 or jax.process_index() == 0


def umask() -> int:
    """The process's file-mode creation mask (read from /proc where possible: setting it to
    read it back is not thread-safe)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = ""):
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``
    (``os.replace``, atomic on one file system), on failure it is removed. In the other
    processes of a distributed job the file is written to a scratch path and dropped."""
    path = Path(path)
    if not is_primary():
        with tempfile.TemporaryDirectory() as scratch:
            yield Path(scratch) / path.name
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix, dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes 0600; the file gets the mode open() would give it
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)
