"""Download the official CAMELS-US archives (NCAR GDEX) with resume and checksums.

Never called by the tests (they run offline); :func:`download_file` is unit-tested with a
fake ``urlopen``.

Checksums: NCAR publishes no SHA-256 sums for these files, so :data:`KNOWN_SHA256` is empty
by default. After a complete download the SHA-256 is computed and written next to the file
(``<file>.sha256``); later calls verify the file against it before re-using it, so a
truncated or altered copy is detected. Pass ``sha256=`` (or fill :data:`KNOWN_SHA256`) to
verify against a sum you trust.
"""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import Request, urlopen

from tqdm.auto import tqdm

__all__ = ["CAMELS_US_URLS", "KNOWN_SHA256", "ChecksumError", "download_file", "download_camels_us", "sha256sum"]

_GDEX = "https://gdex.ucar.edu/dataset/camels/file/"
# Newman et al. (2014) doi:10.5065/D6MW2F4D; Addor et al. (2017) doi:10.5065/D6G73C3Q
CAMELS_US_URLS = {
    "basin_timeseries_v1p2_metForcing_obsFlow.zip": _GDEX + "basin_timeseries_v1p2_metForcing_obsFlow.zip",
    **{f"camels_{t}.txt": f"{_GDEX}camels_{t}.txt" for t in ("clim", "geol", "hydro", "name", "soil", "topo", "vege")},
}
KNOWN_SHA256: dict[str, str] = {}
_CHUNK = 1 << 20


class ChecksumError(ValueError):
    """A downloaded file does not match its recorded or expected SHA-256."""


def sha256sum(path, chunk_size: int = _CHUNK) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk_size), b""):
            h.update(block)
    return h.hexdigest()


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _verify(path: Path, expected: str | None) -> str:
    digest = sha256sum(path)
    recorded = _sidecar(path).read_text().split()[0] if _sidecar(path).is_file() else None
    for label, want in (("expected", expected), ("recorded", recorded)):
        if want is not None and digest != want.lower():
            raise ChecksumError(
                f"{path}: SHA-256 {digest} differs from the {label} {want}; delete the file and download again"
            )
    return digest


def download_file(
    url: str,
    path,
    *,
    sha256: str | None = None,
    progress: bool = True,
    timeout: float = 60.0,
    chunk_size: int = _CHUNK,
) -> Path:
    """Download ``url`` to ``path``, resuming a partial ``<path>.part`` with HTTP Range.

    - An existing ``path`` is verified (against ``sha256`` and/or ``<path>.sha256``) and
      returned without network access.
    - A partial ``<path>.part`` is continued with ``Range: bytes=<size>-``; a server that
      answers 200 instead of 206 sends the whole file, which then restarts the part.
    - On completion the SHA-256 is checked against ``sha256`` (if given), written to
      ``<path>.sha256``, and the part is renamed to ``path``.

    Raises:
        ChecksumError: the file does not match ``sha256`` or its recorded sum (the bad
            part is deleted so that the next call starts afresh).
        urllib.error.URLError / HTTPError: network failures (the part is kept for resume).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file():
        digest = _verify(path, sha256)
        if not _sidecar(path).is_file():
            _sidecar(path).write_text(f"{digest}  {path.name}\n")
        return path
    part = path.with_name(path.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": "difhydro"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = urlopen(Request(url, headers=headers), timeout=timeout)
    except HTTPError as err:
        if err.code != 416 or not have:
            raise
        response = None  # 416: the part already holds the whole file
    if response is not None:
        with response:
            status = getattr(response, "status", 200)
            if status == 206:
                first = _range_start(response.headers.get("Content-Range", ""))
                if first != have:
                    raise OSError(f"{url}: server resumed at byte {first}, expected {have}")
                mode = "ab"
            else:
                have, mode = 0, "wb"
            length = response.headers.get("Content-Length")
            total = have + int(length) if length is not None else None
            with open(part, mode) as fh, tqdm(
                total=total, initial=have, unit="B", unit_scale=True, desc=path.name, disable=not progress
            ) as bar:
                for block in iter(lambda: response.read(chunk_size), b""):
                    fh.write(block)
                    bar.update(len(block))
    digest = sha256sum(part)
    if sha256 is not None and digest != sha256.lower():
        part.unlink()
        raise ChecksumError(f"{url}: downloaded SHA-256 {digest} differs from the expected {sha256}; part deleted")
    part.replace(path)
    _sidecar(path).write_text(f"{digest}  {path.name}\n")
    return path


def _range_start(content_range: str) -> int:
    """First byte of ``Content-Range: bytes <first>-<last>/<total>``."""
    try:
        return int(content_range.split()[1].split("-")[0])
    except (IndexError, ValueError):
        raise OSError(f"malformed Content-Range header {content_range!r}") from None


def _safe_extract(archive: Path, dest: Path) -> None:
    dest = dest.resolve()
    with zipfile.ZipFile(archive) as zf:
        for member in zf.namelist():
            target = (dest / member).resolve()
            if dest not in target.parents and target != dest:
                raise ValueError(f"{archive}: member {member!r} would be written outside {dest}")
        zf.extractall(dest)


def download_camels_us(dest, *, extract: bool = True, progress: bool = True) -> Path:
    """Download CAMELS-US (time series v1.2 and attributes v2.0) from NCAR GDEX.

    About 3.4 GB for the time-series archive. Files go to ``dest``; interrupted downloads
    resume on the next call; checksums are recorded and verified as described in the
    module docstring. With ``extract`` the archive is unpacked and the attribute tables
    are copied to ``<root>/camels_attributes_v2.0`` so that ``root`` is ready for
    :func:`difhydro.data.load_camels_us`.

    Returns:
        ``root``: the folder holding ``basin_mean_forcing`` and ``usgs_streamflow`` (after
        extraction), else ``dest``.
    """
    dest = Path(dest)
    files = {
        name: download_file(url, dest / name, sha256=KNOWN_SHA256.get(name), progress=progress)
        for name, url in CAMELS_US_URLS.items()
    }
    if not extract:
        return dest
    archive = files["basin_timeseries_v1p2_metForcing_obsFlow.zip"]
    marker = dest / ".extracted"
    digest = _sidecar(archive).read_text().split()[0]
    if not (marker.is_file() and marker.read_text().strip() == digest):
        _safe_extract(archive, dest)
        marker.write_text(digest + "\n")
    roots = sorted({p.parent for p in dest.glob("**/basin_mean_forcing") if p.is_dir()})
    if len(roots) != 1:
        raise FileNotFoundError(f"expected one folder with basin_mean_forcing below {dest}, found {roots}")
    root = roots[0]
    attr_dir = root / "camels_attributes_v2.0"
    attr_dir.mkdir(exist_ok=True)
    for name, path in files.items():
        if name.endswith(".txt"):
            shutil.copyfile(path, attr_dir / name)
    return root
