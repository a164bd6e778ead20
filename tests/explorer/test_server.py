"""Every endpoint of the explorer's server, and every kind of bad request it must turn away
with a 4xx and a one-line message while it goes on serving."""

from __future__ import annotations

import base64
import io
import json
import socket

import numpy as np
import pytest
from PIL import Image

from mlx_generative.errors import UsageError
from mlx_generative.explorer import build_lab
from mlx_generative.explorer.server import MAX_BODY, MAX_STRIP


def _image(url: str) -> np.ndarray:
    assert url.startswith("data:image/png;base64,")
    with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as image:
        assert image.format == "PNG"
        return np.asarray(image)


def _stroke(size: int = 56) -> dict:
    canvas = np.zeros((size, size), np.float32)
    canvas[8:48, 25:31] = 1.0
    return {"width": size, "height": size, "pixels": canvas.ravel().round(3).tolist()}


# ---- the page ---------------------------------------------------------------------------


@pytest.mark.parametrize("path,kind", [("/", "text/html"), ("/index.html", "text/html"),
                                       ("/explorer.js", "text/javascript"), ("/explorer.css", "text/css")])
def test_the_page_and_its_files_are_served(client, path, kind):
    status, body = client.get(path)
    assert status == 200 and len(body) > 500
    status, _ = client.get(path + "?v=1")  # a query string does not change the file
    assert status == 200


def test_info_describes_the_models(client, tiny_runs):
    status, info = client.get("/api/info")
    assert status == 200
    assert info["ae"]["latent_dim"] == tiny_runs["ae"].model.args.latent_dim
    assert info["vae"]["latent_dim"] == tiny_runs["vae"].model.args.latent_dim
    assert info["classifier"] is True and info["classes"] == 10
    assert info["sliders"] == 6
    runs = {d["name"]: d for d in info["denoisers"]}
    assert set(runs) == {"ddpm", "ddpm-conditional", "flow"}
    assert runs["ddpm"]["samplers"]["ddpm"] == {"stepped": False, "max_steps": 0}  # all T steps, no choice
    assert runs["ddpm"]["samplers"]["ddim"] == {"stepped": True, "max_steps": 6}
    assert runs["ddpm-conditional"]["conditional"] and not runs["flow"]["conditional"]
    assert runs["flow"]["samplers"] == {"euler": {"stepped": True, "max_steps": 100},
                                        "heun": {"stepped": True, "max_steps": 100}}


def test_latent_map_holds_each_models_projected_codes(client):
    status, maps = client.get("/api/latent-map")
    assert status == 200 and set(maps) == {"ae", "vae"}
    for plane in maps.values():
        points = np.array(plane["points"])
        assert points.shape == (len(plane["labels"]), 2) and len(points) > 100
        assert set(plane["labels"]) <= set(range(10))
        assert abs(points.mean(axis=0)).max() < 1e-2 * (1 + points.std())  # centred: the PCA's mean removed


# ---- the panels -------------------------------------------------------------------------


def test_draw_returns_the_layout_the_reconstructions_posterior_and_class_probabilities(client, tiny_runs):
    status, seen = client.post("/api/draw", _stroke())
    assert status == 200
    digit = _image(seen["input"])
    assert digit.shape == (28, 28) and digit.max() > 200
    rows = np.nonzero(digit.max(axis=1) > 12)[0]
    assert rows.max() - rows.min() + 1 == 20  # the MNIST layout
    assert _image(seen["ae"]).shape == _image(seen["vae"]).shape == (28, 28)
    latent = tiny_runs["vae"].model.args.latent_dim
    assert len(seen["mu"]) == len(seen["sigma"]) == latent and min(seen["sigma"]) > 0
    assert len(seen["probs"]) == 10 and abs(sum(seen["probs"]) - 1) < 1e-3
    status, other = client.post("/api/draw", {**_stroke(), "pixels": [0.0] * 56 * 56})
    assert status == 200 and other["probs"] != seen["probs"]  # a different drawing, different answers


def test_decode_and_interpolate_points_of_the_map(client):
    status, decoded = client.post("/api/decode", {"model": "ae", "points": [[0, 0], [1.5, -0.5]]})
    assert status == 200 and len(decoded["images"]) == 2
    a, b = (_image(u) for u in decoded["images"])
    assert a.shape == (28, 28) and not np.array_equal(a, b)
    status, strip = client.post("/api/interpolate", {"model": "vae", "start": [0, 0], "end": [1, 1], "steps": 8})
    assert status == 200
    assert _image(strip["strip"]).shape == (28 + 4, 8 * 30 + 2)  # 8 images side by side, 2-pixel gaps


def test_the_sliders_move_the_vaes_image(client):
    status, centre = client.post("/api/slide", {"values": [0] * 6})
    status2, moved = client.post("/api/slide", {"values": [3, 0, 0, 0, 0, -2.5]})
    assert status == status2 == 200
    assert not np.array_equal(_image(centre["image"]), _image(moved["image"]))


@pytest.mark.parametrize("body,states", [
    ({"run": "ddpm", "seed": 1}, 7),  # the run's sampler: all T = 6 steps
    ({"run": "ddpm", "seed": 1, "sampler": "ddim", "steps": 3}, 4),
    ({"run": "ddpm", "seed": 1, "sampler": "dpmpp", "steps": 6}, 7),
    ({"run": "flow", "seed": 2, "sampler": "heun", "steps": 2}, 3),
    ({"run": "ddpm-conditional", "seed": 0, "label": 7, "guidance": 2.0}, 7),
])
def test_denoise_plays_every_state_with_its_predicted_image(client, body, states):
    status, answer = client.post("/api/denoise", body)
    assert status == 200
    frames = answer["frames"]
    assert len(frames) == states
    first, last = _image(frames[0]["x"]), _image(frames[-1]["x"])
    assert first.shape == (28 + 4, 4 * 30 + 2)  # 4 samples in a row
    np.testing.assert_array_equal(_image(frames[-1]["x0"]), last)  # at the end, the prediction is the sample
    assert not np.array_equal(first, last)
    assert frames[-1]["name"] in ("x_0", "t=0")


def test_denoise_is_repeatable_by_seed(client):
    one = client.post("/api/denoise", {"run": "flow", "seed": 5, "steps": 3})[1]
    two = client.post("/api/denoise", {"run": "flow", "seed": 5, "steps": 3})[1]
    other = client.post("/api/denoise", {"run": "flow", "seed": 6, "steps": 3})[1]
    assert one == two and one != other


# ---- bad requests -----------------------------------------------------------------------

BAD_POSTS = [
    ("/api/draw", {"width": 56, "height": 56, "pixels": [0.0] * 10}, "'pixels' must be a list of 3136"),
    ("/api/draw", {"width": 56, "height": 56, "pixels": [2.0] * 3136}, "must lie in 0..1"),
    ("/api/draw", {"width": 4000, "height": 56, "pixels": []}, "'width' must lie in 8..280"),
    ("/api/draw", {"width": 56, "height": "56", "pixels": []}, "'height' must be an integer"),
    ("/api/draw", {"height": 56, "pixels": []}, "missing 'width'"),
    ("/api/decode", {"model": "gan", "points": [[0, 0]]}, "'model' must be one of ae, vae"),
    ("/api/decode", {"model": "ae", "points": []}, "'points' must be a list of 1..64"),
    ("/api/decode", {"model": "ae", "points": [[0, "x"]]}, "must hold numbers only"),
    ("/api/decode", {"model": "ae", "points": [[1e9, 0]]}, "'points' must lie in"),
    ("/api/interpolate", {"model": "vae", "start": [0, 0], "end": [1, 1], "steps": MAX_STRIP + 1},
     f"'steps' must lie in 2..{MAX_STRIP}"),
    ("/api/slide", {"values": [0, 0]}, "'values' must be a list of 6 numbers"),
    ("/api/slide", {"values": [0, 0, 0, 0, 0, 3.5]}, "'values' must lie in -3..3"),
    ("/api/denoise", {"run": "gan", "seed": 0}, "'run' must be one of"),
    ("/api/denoise", {"run": "ddpm", "seed": -1}, "'seed' must lie in 0.."),
    ("/api/denoise", {"run": "ddpm", "seed": 0, "sampler": "ddim", "steps": 7}, "'steps' must lie in 1..6"),
    ("/api/denoise", {"run": "ddpm", "seed": 0, "sampler": "ddim", "steps": 0}, "'steps' must lie in 1..6"),
    ("/api/denoise", {"run": "ddpm", "seed": 0, "sampler": "ddpm", "steps": 3}, "takes every one of the T steps"),
    ("/api/denoise", {"run": "ddpm", "seed": 0, "sampler": "euler"}, "'sampler' must be one of ddpm, ddim, dpmpp"),
    ("/api/denoise", {"run": "ddpm-conditional", "seed": 0, "label": 10}, "'label' must lie in 0..9"),
    ("/api/denoise", {"run": "ddpm-conditional", "seed": 0}, "missing 'label'"),
    ("/api/denoise", {"run": "ddpm-conditional", "seed": 0, "label": 3, "guidance": -1}, "'guidance' must lie in"),
    ("/api/denoise", {"run": "ddpm", "seed": 0, "label": 3}, "unconditional: it takes no 'label'"),
    ("/api/denoise", {"run": "flow", "seed": 0, "steps": 101}, "'steps' must lie in 1..100"),
    ("/api/denoise", [1, 2], "the body must be a JSON object"),
]


@pytest.mark.parametrize("path,body,message", BAD_POSTS, ids=[m for _, _, m in BAD_POSTS])
def test_bad_values_get_400_and_one_line(client, path, body, message):
    status, answer = client.post(path, body)
    assert status == 400
    assert message in answer["error"] and "\n" not in answer["error"]


def test_malformed_json_gets_400(client):
    status, answer = client.post("/api/draw", raw=b'{"width": 56,')
    assert status == 400 and answer["error"].startswith("the body is not JSON")
    status, answer = client.post("/api/draw", raw=b"\xff\xfe\x00")
    assert status == 400


def test_a_body_over_the_limit_gets_413_unread(explorer):
    """The server answers from the Content-Length, without reading the body, and closes the
    connection. (The client sends only the start of it: a client still writing a megabyte
    when the server closes gets a broken pipe, and may lose the answer.)"""
    with socket.create_connection(explorer.server_address, timeout=10) as s:
        host = f"{explorer.server_address[0]}:{explorer.server_address[1]}"
        s.sendall(f"POST /api/draw HTTP/1.1\r\nHost: {host}\r\nContent-Length: {MAX_BODY + 1}\r\n\r\n".encode()
                  + b" " * 1000)
        reply = b""
        while chunk := s.recv(4096):  # to the end: the server closes the connection
            reply += chunk
    head, body = reply.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 413") and b"Connection: close" in head
    assert f"{MAX_BODY:,}" in json.loads(body)["error"]


def test_a_body_claiming_to_be_huge_is_refused_before_it_is_sent(explorer):
    with socket.create_connection(explorer.server_address, timeout=10) as s:
        host = f"{explorer.server_address[0]}:{explorer.server_address[1]}"
        s.sendall(f"POST /api/draw HTTP/1.1\r\nHost: {host}\r\nContent-Length: 999999999\r\n\r\n".encode())
        assert s.recv(100).startswith(b"HTTP/1.1 413")


def test_a_post_without_length_gets_411(explorer):
    with socket.create_connection(explorer.server_address, timeout=10) as s:
        host = f"{explorer.server_address[0]}:{explorer.server_address[1]}"
        s.sendall(f"POST /api/draw HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        assert s.recv(100).startswith(b"HTTP/1.1 411")


@pytest.mark.parametrize("path", ["/nope", "/api/nope", "/static/index.html", "/explorer.py"])
def test_unknown_paths_get_404(client, path):
    status, answer = client.get(path)
    assert status == 404 and "no such path" in answer["error"]
    assert client.post(path, {})[0] == 404


@pytest.mark.parametrize("path", ["/../pyproject.toml", "/static/../server.py", "/%2e%2e/%2e%2e/etc/passwd",
                                  "/..%5cserver.py"])
def test_dot_dot_in_a_path_gets_400(explorer, path):
    with socket.create_connection(explorer.server_address, timeout=10) as s:  # as sent, not normalised
        host = f"{explorer.server_address[0]}:{explorer.server_address[1]}"
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        reply = b""
        while chunk := s.recv(4096):  # to the end: the server closes the connection
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 400")
    assert b"must not contain '..'" in reply


def test_other_methods_get_405(client):
    for method in ("PUT", "DELETE", "PATCH"):
        status, answer = client.request(method, "/api/draw", {})
        assert status == 405 and "POST" in answer["error"]


def test_a_foreign_host_header_gets_403(client):
    status, answer = client.get("/api/info", headers={"Host": "evil.example:80"})
    assert status == 403 and "Host" in answer["error"]


def test_the_server_keeps_serving_after_bad_requests(client):
    for path, body, _ in BAD_POSTS:
        client.post(path, body)
    client.post("/api/draw", raw=b"{{{")
    assert client.get("/api/info")[0] == 200
    assert client.post("/api/slide", {"values": [0] * 6})[0] == 200


# ---- choosing the runs --------------------------------------------------------------------


def test_the_explorer_refuses_runs_it_cannot_show(tiny_runs):
    with pytest.raises(UsageError, match="a classifier run has nothing to explore"):
        build_lab([tiny_runs["classifier"].run_dir])
    with pytest.raises(UsageError, match="conditional VAE"):
        build_lab([tiny_runs["vae-conditional"].run_dir])
    with pytest.raises(UsageError, match="give one autoencoder run; .* is one already"):
        build_lab([tiny_runs["ae"].run_dir, tiny_runs["ae"].run_dir])


def test_panels_without_their_model_say_so(tiny_runs, client_for):
    from mlx_generative.explorer.server import ExplorerServer

    server = ExplorerServer(build_lab([tiny_runs["ddpm"].run_dir]))
    server.start()
    try:
        client = client_for(server)
        info = client.get("/api/info")[1]
        assert info["ae"] is None and info["vae"] is None and info["sliders"] == 0
        status, answer = client.post("/api/slide", {"values": []})
        assert status == 404 and "no VAE run is loaded" in answer["error"]
        assert client.post("/api/decode", {"model": "ae", "points": [[0, 0]]})[0] == 404
        assert client.post("/api/denoise", {"run": "ddpm", "seed": 0})[0] == 200
    finally:
        server.close()


def test_a_port_in_use_is_one_line(explorer, capsys):
    from mlx_generative.cli import main as cli

    taken = explorer.server_address[1]
    assert cli(["explore", "pretrained/vae", "--no-browser", "--port", str(taken)]) == 2
    err = capsys.readouterr().err
    assert f"port {taken}: cannot listen on 127.0.0.1:{taken}" in err and "Traceback" not in err
