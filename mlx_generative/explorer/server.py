"""The explorer's web server: the page, and a small JSON API over lab.py, on 127.0.0.1 only.

Python's standard library serves it (``http.server``'s threading server): a page of three
static files and a handful of JSON endpoints, for one user on their own machine, need
nothing more, and a web framework would be the package's largest dependency.

    GET  /                   the page (static/index.html, explorer.js, explorer.css)
    GET  /api/info           which models there are, and their choices
    GET  /api/latent-map     the held-out digits' codes on each map, with their labels
    POST /api/draw           {"width", "height", "pixels": width*height floats in [0, 1]}
    POST /api/decode         {"model": "ae"|"vae", "points": [[a, b], ...]}
    POST /api/interpolate    {"model", "start": [a, b], "end": [a, b], "steps": 2..MAX_STRIP}
    POST /api/slide          {"values": [one per slider, each within +-slider_range]}
    POST /api/denoise        {"run", "seed", "sampler", "steps", "label", "guidance"}

A request the server cannot answer gets a 4xx status and {"error": "one line"}, and the
server goes on serving: malformed JSON or values 400, unknown paths 404, wrong methods 405,
bodies over MAX_BODY 413, a Host header other than this server's 403 (a web page elsewhere
cannot reach it through DNS rebinding). Images travel as PNG data URLs.
"""

from __future__ import annotations

import base64
import io
import json
import math
import socket
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import unquote, urlsplit

import numpy as np
from PIL import Image

from ..data.images import grid
from ..errors import UsageError
from .lab import DIFFUSION_SAMPLES, Lab

HOST = "127.0.0.1"
MAX_BODY = 1_000_000  # bytes: a 280x280 drawing as JSON is about half of it
MAX_CANVAS = 280  # a drawing's side, in pixels, at most
MIN_CANVAS = 8
MAX_POINTS = 64  # points decoded in one request
MAX_STRIP = 16  # images in an interpolation strip
MAX_SEED = 2**31 - 1
MAX_GUIDANCE = 20.0
STATIC = {"/": ("index.html", "text/html; charset=utf-8"),
          "/index.html": ("index.html", "text/html; charset=utf-8"),
          "/explorer.js": ("explorer.js", "text/javascript; charset=utf-8"),
          "/explorer.css": ("explorer.css", "text/css; charset=utf-8")}


class BadRequest(Exception):
    """A request the server answers with ``status`` and a one-line message."""

    def __init__(self, message: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST):
        super().__init__(message)
        self.status = status


# ---- reading a request's values -----------------------------------------------------------


def field(body: dict, name: str, required: bool = True):
    if name not in body or body[name] is None:
        if required:
            raise BadRequest(f"missing {name!r}")
        return None
    return body[name]


def integer(body: dict, name: str, lo: int, hi: int, required: bool = True) -> int | None:
    value = field(body, name, required)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{name!r} must be an integer, got {json.dumps(value)[:40]}")
    if not lo <= value <= hi:
        raise BadRequest(f"{name!r} must lie in {lo}..{hi}, got {value}")
    return value


def number(body: dict, name: str, lo: float, hi: float, required: bool = True) -> float | None:
    value = field(body, name, required)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadRequest(f"{name!r} must be a number, got {json.dumps(value)[:40]}")
    if not lo <= value <= hi:
        raise BadRequest(f"{name!r} must lie in {lo:g}..{hi:g}, got {value:g}")
    return float(value)


def numbers(value, name: str, length: int, lo: float, hi: float) -> np.ndarray:
    """A list of exactly ``length`` finite numbers in [lo, hi], as float32."""
    if not isinstance(value, list) or len(value) != length:
        got = f"{len(value)} values" if isinstance(value, list) else json.dumps(value)[:40]
        raise BadRequest(f"{name!r} must be a list of {length} numbers, got {got}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise BadRequest(f"{name!r} must hold numbers only")
    array = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(array)) or array.min() < lo or array.max() > hi:
        raise BadRequest(f"{name!r} must lie in {lo:g}..{hi:g}")
    return array.astype(np.float32)


def point(value, name: str, bound: float) -> np.ndarray:
    return numbers(value, name, 2, -bound, bound)


def choice(body: dict, name: str, choices, required: bool = True):
    value = field(body, name, required)
    if value is None:
        return None
    if value not in choices:
        raise BadRequest(f"{name!r} must be one of {', '.join(map(str, choices))}, got {json.dumps(value)[:40]}")
    return value


# ---- answers ------------------------------------------------------------------------------


def png_url(pixels: np.ndarray) -> str:
    """uint8 (H, W) -> a data: URL of its PNG."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def row_url(images: np.ndarray) -> str:
    """uint8 (N, H, W) side by side, as one PNG data URL."""
    return png_url(grid(images, nrow=len(images)))


class Api:
    """The endpoints: each checks its request body and asks the lab."""

    def __init__(self, lab: Lab):
        self.lab = lab
        self.info = lab.describe()
        self.map_bound = {name: float(np.abs(plane.points).max() * 2 + 1) for name, plane in lab.planes.items()}

    def get(self, path: str) -> dict:
        if path == "/api/info":
            return self.info
        if path == "/api/latent-map":
            return {name: {"points": np.round(plane.points, 4).tolist(), "labels": plane.labels.tolist()}
                    for name, plane in self.lab.planes.items()}
        raise BadRequest(f"no such path: {path}", HTTPStatus.NOT_FOUND)

    def post(self, path: str, body: dict) -> dict:
        handler = {"/api/draw": self.draw, "/api/decode": self.decode, "/api/interpolate": self.interpolate,
                   "/api/slide": self.slide, "/api/denoise": self.denoise}.get(path)
        if handler is None:
            raise BadRequest(f"no such path: {path}", HTTPStatus.NOT_FOUND)
        return handler(body)

    def _coder(self, body: dict) -> str:
        name = choice(body, "model", ("ae", "vae"))
        if name not in self.lab.planes:
            raise BadRequest(f"no {name} run is loaded; give one to bin/explore", HTTPStatus.NOT_FOUND)
        return name

    def draw(self, body: dict) -> dict:
        if self.lab.ae is None and self.lab.vae is None and self.lab.classifier is None:
            raise BadRequest("no AE, VAE or classifier is loaded to look at a drawing", HTTPStatus.NOT_FOUND)
        width = integer(body, "width", MIN_CANVAS, MAX_CANVAS)
        height = integer(body, "height", MIN_CANVAS, MAX_CANVAS)
        canvas = numbers(field(body, "pixels"), "pixels", width * height, 0.0, 1.0).reshape(height, width)
        seen = self.lab.draw(canvas)
        out = {"input": png_url(seen["input"])}
        for name in ("ae", "vae"):
            if name in seen:
                out[name] = png_url(seen[name])
        if "mu" in seen:
            out["mu"], out["sigma"] = np.round(seen["mu"], 4).tolist(), np.round(seen["sigma"], 4).tolist()
        if "probs" in seen:
            out["probs"] = np.round(seen["probs"], 5).tolist()
        return out

    def decode(self, body: dict) -> dict:
        name = self._coder(body)
        points = field(body, "points")
        if not isinstance(points, list) or not 1 <= len(points) <= MAX_POINTS:
            raise BadRequest(f"'points' must be a list of 1..{MAX_POINTS} [a, b] pairs")
        xy = np.stack([point(p, "points", self.map_bound[name]) for p in points])
        return {"images": [png_url(image) for image in self.lab.decode_points(name, xy)]}

    def interpolate(self, body: dict) -> dict:
        name = self._coder(body)
        bound = self.map_bound[name]
        start, end = point(field(body, "start"), "start", bound), point(field(body, "end"), "end", bound)
        steps = integer(body, "steps", 2, MAX_STRIP)
        return {"strip": row_url(self.lab.interpolate(name, start, end, steps))}

    def slide(self, body: dict) -> dict:
        if self.lab.vae is None:
            raise BadRequest("no VAE run is loaded; give one to bin/explore", HTTPStatus.NOT_FOUND)
        limit = self.info["slider_range"]
        values = numbers(field(body, "values"), "values", self.info["sliders"], -limit, limit)
        return {"image": png_url(self.lab.slide(values))}

    def denoise(self, body: dict) -> dict:
        choices = {d["name"]: d for d in self.info["denoisers"]}
        if not choices:
            raise BadRequest("no DDPM or flow run is loaded; give one to bin/explore", HTTPStatus.NOT_FOUND)
        run = choices[choice(body, "run", list(choices))]
        seed = integer(body, "seed", 0, MAX_SEED)
        sampler = choice(body, "sampler", list(run["samplers"]), required=False) or run["sampler"]
        stepped = run["samplers"][sampler]
        if not stepped["stepped"] and body.get("steps") is not None:
            raise BadRequest(f"sampler {sampler!r} takes every one of the T steps; leave out 'steps'")
        steps = integer(body, "steps", 1, stepped["max_steps"], required=False) if stepped["stepped"] else None
        label = guidance = None
        if run["conditional"]:
            label = integer(body, "label", 0, self.info["classes"] - 1)
            guidance = number(body, "guidance", 0.0, MAX_GUIDANCE, required=False)
        elif body.get("label") is not None or body.get("guidance") is not None:
            raise BadRequest(f"run {run['name']!r} is unconditional: it takes no 'label' or 'guidance'")
        states, x0s, names = self.lab.denoise(run["name"], seed, sampler, steps, label, guidance)
        return {"frames": [{"name": names[i], "x": row_url(states[:, i]), "x0": row_url(x0s[:, i])}
                           for i in range(states.shape[1])], "samples": DIFFUSION_SAMPLES}


# ---- HTTP ---------------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    server: ExplorerServer
    protocol_version = "HTTP/1.1"  # keep-alive: the page's many small requests reuse one connection

    def setup(self):
        super().setup()
        # Headers and body leave in two writes; with Nagle's algorithm the second waits for
        # the client's delayed ACK, 40 ms on Linux, longer than a decode takes.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass  # quiet: the terminal shows the URL and errors, not every request

    def do_GET(self):
        self._answer(lambda path: self._get(path))

    def do_POST(self):
        self._answer(lambda path: self.server.api.post(path, self._json_body()))

    def do_PUT(self):
        self._answer(self._wrong_method)

    do_DELETE = do_PATCH = do_PUT

    def _wrong_method(self, path: str):
        raise BadRequest(f"{self.command} is not served; use GET for pages, POST for /api/ actions",
                         HTTPStatus.METHOD_NOT_ALLOWED)

    def _get(self, path: str):
        if path in STATIC:
            name, kind = STATIC[path]
            return kind, (resources.files(__package__) / "static" / name).read_bytes()
        return self.server.api.get(path)

    def _json_body(self) -> dict:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise BadRequest("a POST needs a Content-Length header", HTTPStatus.LENGTH_REQUIRED)
        if int(length) > MAX_BODY:
            raise BadRequest(f"body of {int(length):,} bytes; the limit is {MAX_BODY:,}",
                             HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        raw = self.rfile.read(int(length))
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise BadRequest(f"the body is not JSON ({e.msg if hasattr(e, 'msg') else 'not UTF-8'})") from None
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
        return body

    def _path(self) -> str:
        host = self.headers.get("Host", "")
        if host not in self.server.hosts:
            raise BadRequest(f"Host {host!r} is not this server", HTTPStatus.FORBIDDEN)
        path = unquote(urlsplit(self.path).path)
        if ".." in path.split("/") or "\\" in path:
            raise BadRequest("paths must not contain '..' or backslashes")
        return path

    def _answer(self, respond) -> None:
        try:
            path = self._path()
            with self.server.lock:  # one model call at a time: MLX's streams are not for sharing
                result = respond(path)
            kind, payload = result if isinstance(result, tuple) else ("application/json", None)
            if payload is None:
                payload = json.dumps(result).encode()
            self._send(HTTPStatus.OK, kind, payload)
        except BadRequest as e:
            self._send_error(e.status, str(e))
        except UsageError as e:  # a value the models refuse, that the checks above let through
            self._send_error(HTTPStatus.BAD_REQUEST, str(e).splitlines()[0])

    def _send_error(self, status: HTTPStatus, message: str) -> None:
        self._send(status, "application/json", json.dumps({"error": message}).encode())

    def _send(self, status: HTTPStatus, kind: str, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        if status >= 400 and self.command == "POST" and status in (HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                                                                   HTTPStatus.LENGTH_REQUIRED):
            self.send_header("Connection", "close")  # the unread body cannot be skipped
            self.close_connection = True
        self.end_headers()
        self.wfile.write(payload)


class ExplorerServer(ThreadingHTTPServer):
    """The page and its API for ``lab``, on 127.0.0.1:``port`` (0: a free port)."""

    daemon_threads = True

    def __init__(self, lab: Lab, port: int = 0):
        super().__init__((HOST, port), Handler)
        self.api = Api(lab)
        self.lock = threading.Lock()
        port = self.server_address[1]
        self.hosts = {f"{HOST}:{port}", f"localhost:{port}"}

    def handle_error(self, request, client_address) -> None:
        """A client that went away mid-answer (a page reloaded, a request aborted) is not an
        error worth a traceback; anything else is printed as the base class does."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}/"

    def start(self) -> threading.Thread:
        """Serve from a background thread (``close()`` stops it)."""
        thread = threading.Thread(target=self.serve_forever, name="explorer", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        self.shutdown()
        self.server_close()
