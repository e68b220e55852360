"""download_file: resume with HTTP Range and SHA-256 checks, against a fake urlopen."""

import hashlib
import io
from urllib.error import HTTPError

import pytest

from difhydro.data import ChecksumError, download_file
from difhydro.data import download as dl

PAYLOAD = bytes(range(256)) * 40  # 10240 bytes
URL = "https://example.invalid/camels.zip"


class FakeResponse(io.BytesIO):
    def __init__(self, body, status, headers):
        super().__init__(body)
        self.status = status
        self.headers = headers


class FakeServer:
    """Serves PAYLOAD; honours Range unless ``ignore_range``; records request headers."""

    def __init__(self, ignore_range=False, fail_after=None):
        self.ignore_range = ignore_range
        self.fail_after = fail_after
        self.requests = []

    def __call__(self, request, timeout=None):
        rng = request.get_header("Range")
        self.requests.append(rng)
        if rng and not self.ignore_range:
            first = int(rng.split("=")[1].rstrip("-"))
            if first >= len(PAYLOAD):
                raise HTTPError(URL, 416, "Range Not Satisfiable", {}, None)
            body = PAYLOAD[first:]
            return FakeResponse(body, 206, {"Content-Range": f"bytes {first}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}", "Content-Length": str(len(body))})
        body = PAYLOAD if self.fail_after is None else PAYLOAD[: self.fail_after]
        return FakeResponse(body, 200, {"Content-Length": str(len(PAYLOAD))})


SHA = hashlib.sha256(PAYLOAD).hexdigest()


def test_fresh_download_records_checksum(tmp_path, monkeypatch):
    server = FakeServer()
    monkeypatch.setattr(dl, "urlopen", server)
    path = download_file(URL, tmp_path / "f.zip", progress=False, chunk_size=1000)
    assert path.read_bytes() == PAYLOAD and server.requests == [None]
    assert (tmp_path / "f.zip.sha256").read_text().split()[0] == SHA
    # a second call verifies the file and does not touch the network
    download_file(URL, path, progress=False)
    assert server.requests == [None]


def test_resume_sends_range_and_appends(tmp_path, monkeypatch):
    (tmp_path / "f.zip.part").write_bytes(PAYLOAD[:3000])
    server = FakeServer()
    monkeypatch.setattr(dl, "urlopen", server)
    path = download_file(URL, tmp_path / "f.zip", sha256=SHA, progress=False)
    assert server.requests == ["bytes=3000-"]
    assert path.read_bytes() == PAYLOAD and not (tmp_path / "f.zip.part").exists()


def test_server_ignoring_range_restarts(tmp_path, monkeypatch):
    (tmp_path / "f.zip.part").write_bytes(b"garbage" * 10)
    monkeypatch.setattr(dl, "urlopen", FakeServer(ignore_range=True))
    assert download_file(URL, tmp_path / "f.zip", sha256=SHA, progress=False).read_bytes() == PAYLOAD


def test_complete_part_and_416(tmp_path, monkeypatch):
    (tmp_path / "f.zip.part").write_bytes(PAYLOAD)
    monkeypatch.setattr(dl, "urlopen", FakeServer())
    assert download_file(URL, tmp_path / "f.zip", sha256=SHA, progress=False).read_bytes() == PAYLOAD


def test_checksum_mismatches(tmp_path, monkeypatch):
    monkeypatch.setattr(dl, "urlopen", FakeServer(fail_after=5000))  # truncated transfer
    with pytest.raises(ChecksumError, match="differs from the expected"):
        download_file(URL, tmp_path / "f.zip", sha256=SHA, progress=False)
    assert not (tmp_path / "f.zip.part").exists()  # bad part removed, next call starts afresh
    monkeypatch.setattr(dl, "urlopen", FakeServer())
    path = download_file(URL, tmp_path / "f.zip", progress=False)
    path.write_bytes(PAYLOAD[:-1] + b"\x00")  # corrupted after download
    with pytest.raises(ChecksumError, match="differs from the recorded"):
        download_file(URL, path, progress=False)


def test_download_camels_us_extracts_and_places_attributes(tmp_path, monkeypatch):
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("basin_dataset_public_v1p2/basin_mean_forcing/daymet/01/x_lump_cida_forcing_leap.txt", "42\n")
        zf.writestr("basin_dataset_public_v1p2/usgs_streamflow/01/x_streamflow_qc.txt", "x\n")
    bodies = {url: (buf.getvalue() if name.endswith(".zip") else f"gauge_id;{name}\n".encode()) for name, url in dl.CAMELS_US_URLS.items()}
    requested = []

    def fake(request, timeout=None):
        requested.append(request.full_url)
        body = bodies[request.full_url]
        return FakeResponse(body, 200, {"Content-Length": str(len(body))})

    monkeypatch.setattr(dl, "urlopen", fake)
    root = dl.download_camels_us(tmp_path, progress=False)
    assert root == tmp_path / "basin_dataset_public_v1p2"
    assert (root / "basin_mean_forcing/daymet/01/x_lump_cida_forcing_leap.txt").read_text() == "42\n"
    assert (root / "camels_attributes_v2.0/camels_topo.txt").read_text() == "gauge_id;camels_topo.txt\n"
    assert sorted(requested) == sorted(dl.CAMELS_US_URLS.values())
    assert all(u.startswith("https://gdex.ucar.edu/dataset/camels/file/") for u in requested)
    # second call: everything verified from disk, no request, no re-extraction needed
    assert dl.download_camels_us(tmp_path, progress=False) == root and len(requested) == len(dl.CAMELS_US_URLS)
