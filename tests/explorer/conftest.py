"""An explorer server over the session's tiny runs, started once for the explorer's tests."""

from __future__ import annotations

import http.client
import json

import pytest

from mlx_generative.explorer import build_lab
from mlx_generative.explorer.server import ExplorerServer


class Client:
    """Requests to a running explorer: (status, decoded JSON or raw bytes)."""

    def __init__(self, server: ExplorerServer):
        self.host, self.port = server.server_address

    def request(self, method: str, path: str, body=None, headers=None, raw: bytes | None = None):
        connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
        payload = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        connection.request(method, path, body=payload, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
        connection.close()
        if response.getheader("Content-Type", "").startswith("application/json"):
            return response.status, json.loads(data)
        return response.status, data

    def get(self, path: str, **kw):
        return self.request("GET", path, **kw)

    def post(self, path: str, body=None, **kw):
        return self.request("POST", path, body, **kw)


@pytest.fixture(scope="session")
def explorer(tiny_runs):
    runs = [tiny_runs[name].run_dir for name in ("ae", "vae", "ddpm", "ddpm-conditional", "flow")]
    lab = build_lab(runs)
    lab.warm_up()
    server = ExplorerServer(lab)
    server.start()
    yield server
    server.close()


@pytest.fixture
def client(explorer) -> Client:
    return Client(explorer)


@pytest.fixture
def client_for():
    """``client_for(server)``: a Client of another server (a test's own)."""
    return Client
