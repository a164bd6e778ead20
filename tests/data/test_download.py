"""The downloader against local HTTP servers on 127.0.0.1; never the real mirrors."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mlx_generative.cli.fetch_data import main as fetch_data_main
from mlx_generative.data import download as download_module
from mlx_generative.data.datasets import DATASETS, DataFile, DatasetSpec
from mlx_generative.data.download import download
from mlx_generative.errors import DownloadError

FILE_NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def idx_payload(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


rng = np.random.default_rng(1)
PAYLOADS = {
    FILE_NAMES[0]: idx_payload(rng.integers(0, 256, (8, 28, 28), dtype=np.uint8)),
    FILE_NAMES[1]: idx_payload(np.arange(8, dtype=np.uint8)),
    FILE_NAMES[2]: idx_payload(rng.integers(0, 256, (2, 28, 28), dtype=np.uint8)),
    FILE_NAMES[3]: idx_payload(np.array([3, 4], dtype=np.uint8)),
}


def gz(data: bytes, level: int = 9) -> bytes:
    return gzip.compress(data, compresslevel=level, mtime=0)


def mirror_contents(kind: str) -> dict[str, bytes]:
    """What one mirror serves, file name -> body."""
    if kind == "good":
        return {name: gz(data) for name, data in PAYLOADS.items()}
    if kind == "recompressed":  # another gzip level: other .gz bytes, same payload
        return {name: gz(data, level=1) for name, data in PAYLOADS.items()}
    if kind == "corrupt":  # valid gzip and IDX, wrong contents
        return {name: gz(data[:-1] + bytes([data[-1] ^ 1])) for name, data in PAYLOADS.items()}
    if kind == "truncated":  # gzip cut short
        return {name: gz(data)[:20] for name, data in PAYLOADS.items()}
    if kind == "empty":  # every file 404s
        return {}
    raise ValueError(kind)


class Server:
    """An HTTP server with several mirrors under /<kind>/, counting requests."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        routes = {
            f"/{kind}/{name}": body
            for kind in ("good", "recompressed", "corrupt", "truncated", "empty")
            for name, body in mirror_contents(kind).items()
        }
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                body = routes.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # keep test output quiet
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def url(self, kind: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{kind}/"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    yield srv
    srv.close()


@pytest.fixture
def closed_port_url() -> str:
    """A URL on a port nothing listens on: connection refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"


@pytest.fixture(autouse=True)
def toy_dataset(monkeypatch):
    files = [DataFile(name, hashlib.sha256(PAYLOADS[name]).hexdigest()) for name in FILE_NAMES]
    spec = DatasetSpec(
        name="toy",
        title="Toy",
        train_images=files[0],
        train_labels=files[1],
        test_images=files[2],
        test_labels=files[3],
        mirrors=(),
        system_dirs=(),
        how_to_get="get it with: bin/fetch-data toy",
    )
    monkeypatch.setitem(DATASETS, "toy", spec)
    return spec


def assert_complete(directory: Path) -> None:
    assert sorted(p.name for p in directory.iterdir()) == sorted(FILE_NAMES)
    for name in FILE_NAMES:
        assert gzip.decompress((directory / name).read_bytes()) == PAYLOADS[name]


def test_good_mirror(server, tmp_path):
    dest = download("toy", dest=tmp_path / "toy", mirrors=[server.url("good")], progress=True)
    assert dest == tmp_path / "toy"
    assert_complete(dest)


def test_corrupt_mirror_is_rejected_and_the_next_used(server, tmp_path):
    dest = download("toy", tmp_path, mirrors=[server.url("corrupt"), server.url("good")], progress=False)
    assert_complete(dest)
    assert sum(r.startswith("/corrupt/") for r in server.requests) == 4
    assert sum(r.startswith("/good/") for r in server.requests) == 4


def test_bad_gzip_and_missing_files_are_skipped(server, tmp_path):
    mirrors = [server.url("truncated"), server.url("empty"), server.url("good")]
    assert_complete(download("toy", tmp_path, mirrors=mirrors, progress=False))


def test_down_mirror_is_skipped(server, tmp_path, closed_port_url):
    assert_complete(download("toy", tmp_path, mirrors=[closed_port_url, server.url("good")], progress=False))


def test_stalled_mirror_times_out(server, tmp_path, monkeypatch):
    monkeypatch.setattr(download_module, "TIMEOUT", 0.1)
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        stalled = f"http://127.0.0.1:{silent.getsockname()[1]}/x/"
        assert_complete(download("toy", tmp_path, mirrors=[stalled, server.url("good")], progress=False))


def test_all_mirrors_bad_lists_each_and_leaves_nothing(server, tmp_path, closed_port_url):
    mirrors = [server.url("corrupt"), server.url("truncated"), server.url("empty"), closed_port_url]
    dest = tmp_path / "toy"
    with pytest.raises(DownloadError) as info:
        download("toy", dest, mirrors=mirrors, progress=False)
    message = str(info.value)
    assert "\n" not in message
    for mirror in mirrors:
        assert mirror in message
    assert "checksum mismatch" in message
    assert "gzip" in message
    assert "HTTP 404" in message
    assert "refused" in message.lower()
    assert list(dest.iterdir()) == []  # no partial or temporary file under any name


def test_recompressed_payload_verifies(server, tmp_path):
    dest = download("toy", tmp_path, mirrors=[server.url("recompressed")], progress=False)
    assert_complete(dest)
    assert (dest / FILE_NAMES[0]).read_bytes() == mirror_contents("recompressed")[FILE_NAMES[0]]


def test_present_files_are_not_downloaded_again(server, tmp_path):
    download("toy", tmp_path, mirrors=[server.url("good")], progress=False)
    server.requests.clear()
    download("toy", tmp_path, mirrors=[server.url("good")], progress=False)
    assert server.requests == []


def test_uncompressed_copy_counts_as_present(server, tmp_path):
    for name in FILE_NAMES:
        (tmp_path / name.removesuffix(".gz")).write_bytes(PAYLOADS[name])
    download("toy", tmp_path, mirrors=[server.url("good")], progress=False)
    assert server.requests == []


def test_corrupt_present_file_is_replaced(server, tmp_path):
    download("toy", tmp_path, mirrors=[server.url("good")], progress=False)
    (tmp_path / FILE_NAMES[1]).write_bytes(b"garbage")
    server.requests.clear()
    assert_complete(download("toy", tmp_path, mirrors=[server.url("good")], progress=False))
    assert server.requests == [f"/good/{FILE_NAMES[1]}"]


def test_default_destination_is_the_user_cache(server, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    dest = download("toy", mirrors=[server.url("good")], progress=False)
    assert dest == tmp_path / "mlx-generative" / "toy"
    assert_complete(dest)


def test_fetch_data_main(server, tmp_path, capsys, monkeypatch):
    # fetch-data offers only names with mirrors; the ones given on the command line win.
    monkeypatch.setitem(DATASETS, "toy", dataclasses.replace(DATASETS["toy"], mirrors=("http://unused/",)))
    code = fetch_data_main(["toy", "--dest", str(tmp_path), "--mirror", server.url("good"), "--quiet"])
    assert code == 0
    assert_complete(tmp_path)
    assert str(tmp_path) in capsys.readouterr().out


def test_fetch_data_main_rejects_unknown_names():
    with pytest.raises(SystemExit) as info:
        fetch_data_main(["cifar"])
    assert info.value.code == 2
