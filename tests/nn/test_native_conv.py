"""The native tap convolution (native/, `uv sync --extra fast`) against the pure-MLX one.

Skipped where the extension is not installed. Every instruction set this CPU runs is
checked (the loops differ per vector width), over random shapes, tap sets and paddings:
values, input gradients and weight gradients, against nn/conv.py's ``tap_conv`` of the
zero-padded input (itself checked against mx.conv2d in test_conv.py).
"""

from __future__ import annotations

import os
import subprocess
import sys

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from native_helpers import INSTRUCTION_SETS, kernels
from native_helpers import close as _close

from mlx_generative.nn import conv, layers
from mlx_generative.runtime import native


def _reference(x, w, taps, margin, pad, bias=None, relu=False):
    top, bottom, left, right = pad
    y = conv.tap_conv(tuple(taps), margin)(mx.pad(x, [(0, 0), (top, bottom), (left, right), (0, 0)]), w)
    if bias is not None:
        y = y + (bias if bias.ndim == 1 else bias[:, None, None, :])
    return nn.relu(y) if relu else y


def _native(x, w, taps, margin, pad, bias=None, relu=False):
    return kernels.tap_conv(x, w, list(taps), margin, tuple(pad), bias, 1, relu)


def _check(x, w, taps, margin, pad, bias=None, relu=False):
    ref = _reference(x, w, taps, margin, pad, bias, relu)
    _close(_native(x, w, taps, margin, pad, bias, relu), ref)
    probe = mx.random.normal(ref.shape)  # a generic cotangent, not all ones

    def loss(f):
        return lambda *args: mx.sum(f(*args[:2], taps, margin, pad, *args[2:], relu=relu) * probe)

    args, argnums = ((x, w), (0, 1)) if bias is None else ((x, w, bias), (0, 1, 2))
    for ours, theirs in zip(mx.grad(loss(_native), argnums=argnums)(*args),
                            mx.grad(loss(_reference), argnums=argnums)(*args)):
        _close(ours, theirs)


def _random_case(rng):
    """A random geometry: square kernels, the stride-2 layers' tap sets, or any taps at all."""
    kind = rng.integers(3)
    if kind == 0:
        k = int(rng.integers(1, 5))
        taps, margin = [(dy, dx) for dy in range(k) for dx in range(k)], k - 1
    elif kind == 1:
        ry, rx = rng.integers(2, size=2)
        taps, margin = [(int(ry + a), int(rx + b)) for a in (0, 1) for b in (0, 1)], 2
    else:
        margin = int(rng.integers(0, 4))
        count = int(rng.integers(1, (margin + 1) ** 2 + 1))
        cells = rng.choice((margin + 1) ** 2, size=count, replace=False)
        taps = [(int(c // (margin + 1)), int(c % (margin + 1))) for c in cells]
    pad = tuple(int(p) for p in rng.integers(0, 3, size=4))
    n = int(rng.integers(1, 5))
    h = int(rng.integers(max(1, margin + 1 - pad[0] - pad[1]), 12))
    w = int(rng.integers(max(1, margin + 1 - pad[2] - pad[3]), 30))
    c, o = (int(v) for v in rng.choice([1, 2, 3, 5, 8, 16, 17, 32, 33, 64, 70, 128], size=2))
    return (n, h, w, c), (len(taps), c, o), taps, margin, pad


@pytest.mark.parametrize("seed", range(12))
def test_random_geometries_match_the_pure_mlx_convolution(instruction_set, seed):
    rng = np.random.default_rng(seed)
    x_shape, w_shape, taps, margin, pad = _random_case(rng)
    mx.random.seed(seed)
    _check(mx.random.normal(x_shape), mx.random.normal(w_shape), taps, margin, pad)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("per_image", [False, True])
def test_a_bias_and_its_gradient_match(instruction_set, seed, per_image):
    # The sums start from the bias: one (O,) for all images, or (N, O), one per image.
    rng = np.random.default_rng(100 + seed)
    x_shape, w_shape, taps, margin, pad = _random_case(rng)
    mx.random.seed(seed)
    bias = mx.random.normal((x_shape[0], w_shape[-1]) if per_image else (w_shape[-1],))
    _check(mx.random.normal(x_shape), mx.random.normal(w_shape), taps, margin, pad, bias)


@pytest.mark.parametrize("seed", range(8))
def test_a_relu_after_the_convolution_and_its_gradient_match(instruction_set, seed):
    # relu=True clamps each image's output in the kernel; the gradients then pass dy only
    # where the output is > 0, as nn.relu's does. Random signs put about half on each side.
    rng = np.random.default_rng(300 + seed)
    x_shape, w_shape, taps, margin, pad = _random_case(rng)
    mx.random.seed(seed)
    bias = mx.random.normal((w_shape[-1],)) if seed % 2 else None
    x, w = mx.random.normal(x_shape), mx.random.normal(w_shape)
    y = _native(x, w, taps, margin, pad, bias, relu=True)
    assert mx.min(y).item() == 0.0  # clamped, not merely close to the reference
    _check(x, w, taps, margin, pad, bias, relu=True)


def test_a_gradient_of_the_bias_alone_or_of_the_weights_alone():
    mx.random.seed(8)
    x, w, b = mx.random.normal((3, 9, 9, 16)), mx.random.normal((9, 16, 32)), mx.random.normal((32,))
    taps = conv.square_taps(3)
    for argnums in (1, 2, (0, 2), (2, 1)):
        ours = mx.grad(lambda x, w, b: mx.sum(_native(x, w, taps, 2, (1, 1, 1, 1), b) ** 2), argnums=argnums)(x, w, b)
        ref = mx.grad(lambda x, w, b: mx.sum(_reference(x, w, taps, 2, (1, 1, 1, 1), b) ** 2), argnums=argnums)(x, w, b)
        for a, r in zip(ours if isinstance(argnums, tuple) else [ours], ref if isinstance(argnums, tuple) else [ref]):
            _close(a, r)


# The package's own layers: every convolution of the AE, VAE and DDPM at batch 3.
LAYER_CASES = [
    ((3, 28, 28, 1), 3, 16, 1),  # the UNet's stem
    ((3, 14, 14, 32), 3, 32, 1),  # a 14x14 residual block
    ((3, 7, 7, 64), 3, 64, 1),  # the middle block
    ((3, 28, 28, 32), 3, 1, 1),  # the output convolution: one output channel
    ((3, 28, 28, 16), 3, 32, 0),
]


@pytest.mark.parametrize("x_shape,k,out_c,p", LAYER_CASES)
def test_the_models_convolutions_match(instruction_set, x_shape, k, out_c, p):
    mx.random.seed(3)
    w = conv.tap_weights(mx.random.normal((out_c, k, k, x_shape[-1])))
    _check(mx.random.normal(x_shape), w, conv.square_taps(k), k - 1, (p, p, p, p))


def _same_with_and_without(monkeypatch, layer, *inputs, call=None):
    """call(*inputs) (default: layer(*inputs)) with the native convolution and with the pure-MLX
    one: the value of a generic loss, its gradients in every input, and in the layer's weight
    and bias."""
    call = call or layer
    probe = mx.random.normal(call(*inputs).shape)  # a generic cotangent, not all ones

    def value_and_grads():
        def loss(params, *inputs):
            layer.update(params)
            return mx.sum(call(*inputs) * probe)
        argnums = tuple(range(1 + len(inputs)))
        return mx.value_and_grad(loss, argnums=argnums)(layer.trainable_parameters(), *inputs)

    with_native = value_and_grads()
    monkeypatch.setattr(native, "conv_for", lambda x, w: None)
    without = value_and_grads()
    _close(with_native[0], without[0])
    for a, b in zip(with_native[1][1:], without[1][1:]):
        _close(a, b)
    for name in ("weight", "bias"):
        _close(with_native[1][0][name], without[1][0][name])


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("layer", [layers.Down(16, 32), layers.Up(64, 32), conv.Conv2d(32, 32, 3, padding=1),
                                   conv.Conv2d(8, 16, 1)])
def test_layers_give_the_same_values_and_gradients_with_and_without_it(layer, relu, monkeypatch):
    # relu=True: the ReLU after the layer, inside the native call (the encoders' and decoders').
    mx.random.seed(4)
    _same_with_and_without(monkeypatch, layer, mx.random.normal((2, 14, 14, layer.weight.shape[-1])),
                           call=lambda x: layer(x, relu=relu))


@pytest.mark.parametrize("seed", range(8))
def test_four_interleaved_phases_are_the_up_layer(instruction_set, seed, monkeypatch):
    # Up runs as one native call with phases=4: each phase written to every other pixel of
    # every other row, its input gradient summed over the phases, its dy gathered per phase.
    rng = np.random.default_rng(200 + seed)
    c, o = (int(v) for v in rng.choice([1, 2, 3, 8, 16, 17, 32, 64], size=2))
    layer = layers.Up(c, o)
    x = mx.random.normal((int(rng.integers(1, 4)), int(rng.integers(1, 9)), int(rng.integers(1, 16)), c))
    relu = bool(seed % 2)  # the decoder's first Up has its ReLU inside: clamped per phase pixel
    _same_with_and_without(monkeypatch, layer, x, call=lambda x: layer(x, relu=relu))


@pytest.mark.parametrize("seed", range(8))
def test_down_reading_its_input_as_blocks_is_the_down_layer(instruction_set, seed, monkeypatch):
    # Down runs as one native call with blocks=2: each image loaded as 2x2 blocks of pixels
    # (space_to_depth as it is read), and its input gradient written back the same way.
    rng = np.random.default_rng(400 + seed)
    c, o = (int(v) for v in rng.choice([1, 2, 3, 8, 16, 17, 32, 64], size=2))
    layer = layers.Down(c, o)
    n, h, w = (int(v) for v in rng.integers(1, 8, size=3))
    relu = bool(seed % 2)
    _same_with_and_without(monkeypatch, layer, mx.random.normal((n, 2 * h, 2 * w, c)),
                           call=lambda x: layer(x, relu=relu))


def test_a_shifted_convolution_is_the_same_with_and_without_it(monkeypatch):
    # Conv2d(x, shift): the UNet's time embedding, (N, out), added per image.
    mx.random.seed(9)
    layer = conv.Conv2d(16, 32, 3, padding=1)
    x, shift = mx.random.normal((3, 7, 7, 16)), mx.random.normal((3, 32))
    _same_with_and_without(monkeypatch, layer, x, shift, call=lambda x, shift: layer(x, shift=shift))


def test_works_under_compile_and_on_another_stream():
    mx.random.seed(5)
    x, w = mx.random.normal((4, 10, 10, 8)), mx.random.normal((9, 8, 16))
    taps = conv.square_taps(3)
    grad = mx.compile(mx.grad(lambda x, w: mx.sum(_native(x, w, taps, 2, (1, 1, 1, 1)) ** 2), argnums=(0, 1)))
    ref = mx.grad(lambda x, w: mx.sum(_reference(x, w, taps, 2, (1, 1, 1, 1)) ** 2), argnums=(0, 1))(x, w)
    with mx.stream(mx.new_stream(mx.cpu)):
        ours = grad(x, w)
    for a, b in zip(ours, ref):
        _close(a, b)


def test_threads_do_not_change_the_result():
    mx.random.seed(6)
    x, w = mx.random.normal((16, 14, 14, 32)), mx.random.normal((9, 32, 32))
    taps = conv.square_taps(3)
    previous = kernels.threads()
    results = []
    try:
        for threads in (1, 2, 3):
            kernels.set_threads(threads)
            y = _native(x, w, taps, 2, (1, 1, 1, 1))
            results.append([y, *mx.grad(lambda x, w: mx.sum(_native(x, w, taps, 2, (1, 1, 1, 1)) ** 2),
                                         argnums=(0, 1))(x, w)])
    finally:
        kernels.set_threads(previous)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            _close(a, b, tol=1e-5)


def test_a_strided_cotangent_is_read_correctly():
    # A broadcast cotangent (stride 0), as the gradient of a sum gives, must not be read as dense.
    mx.random.seed(7)
    x, w = mx.random.normal((2, 6, 6, 4)), mx.random.normal((4, 4, 8))
    taps = [(0, 0), (0, 1), (1, 0), (1, 1)]
    ours = mx.grad(lambda x, w: mx.sum(_native(x, w, taps, 1, (0, 0, 0, 0))), argnums=(0, 1))(x, w)
    ref = mx.grad(lambda x, w: mx.sum(_reference(x, w, taps, 1, (0, 0, 0, 0))), argnums=(0, 1))(x, w)
    for a, b in zip(ours, ref):
        _close(a, b)


def test_strided_and_broadcast_inputs_are_read_as_their_values():
    # The primitive reads views as they are (no Contiguous operation in the graph): a transposed
    # x and w, and a broadcast bias, copied row-major inside the work.
    mx.random.seed(10)
    x = mx.random.normal((3, 2, 7, 6)).transpose(0, 2, 1, 3)[:, ::2]  # (3, 4, 2, 6), strided
    w = mx.random.normal((6, 5, 4)).transpose(2, 0, 1)  # (4, 6, 5)
    bias = mx.broadcast_to(mx.random.normal((1, 5)), (3, 5))  # one per image, all the same
    taps = [(0, 0), (0, 1), (1, 0), (1, 1)]
    _check(x, w, taps, 1, (1, 0, 1, 0), bias)
    _check(x, w, taps, 1, (1, 0, 1, 0), bias, relu=True)


@pytest.mark.parametrize("x_shape,w_shape,taps,margin,pad,message,phases", [
    ((2, 5, 5), (1, 5, 3), [(0, 0)], 0, (0, 0, 0, 0), "x must be (N, H, W, C)", 1),
    ((1, 5, 5, 4), (2, 4, 3), [(0, 0)], 0, (0, 0, 0, 0), "w must be (1, 4, C_out)", 1),
    ((1, 5, 5, 4), (1, 3, 3), [(0, 0)], 0, (0, 0, 0, 0), "w must be (1, 4, C_out)", 1),
    ((1, 5, 5, 4), (1, 4, 3), [(0, 3)], 2, (0, 0, 0, 0), "tap (0, 3) outside 0..2", 1),
    ((1, 2, 2, 4), (1, 4, 3), [(0, 0)], 3, (0, 0, 0, 0), "margin leaves no output", 1),
    ((1, 5, 5, 4), (1, 4, 3), [(0, 0)], 0, (0, -1, 0, 0), "padding must be >= 0", 1),
    ((1, 5, 5, 4), (2, 4, 3), [(0, 0), (0, 1)], 1, (0, 0, 0, 0), "2 taps do not split into 4 phases", 4),
    ((1, 5, 5, 4), (4, 4, 3), [(0, 0)] * 4, 1, (0, 0, 0, 0), "phases must be 1 or 4, got 2", 2),
])
def test_bad_geometry_is_a_clear_error(x_shape, w_shape, taps, margin, pad, message, phases):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        kernels.tap_conv(mx.zeros(x_shape), mx.zeros(w_shape), taps, margin, pad, None, phases)


def test_blocks_need_an_even_input_and_are_1_or_2():
    with pytest.raises(ValueError, match="blocks=2 needs an even height and width, got 5 x 4"):
        kernels.tap_conv(mx.zeros((1, 5, 4, 2)), mx.zeros((1, 8, 3)), [(0, 0)], 0, (0, 0, 0, 0), None, 1, False, 2)
    with pytest.raises(ValueError, match="blocks must be 1 or 2, got 3"):
        kernels.tap_conv(mx.zeros((1, 6, 6, 2)), mx.zeros((1, 18, 3)), [(0, 0)], 0, (0, 0, 0, 0), None, 1, False, 3)


@pytest.mark.parametrize("bias_shape", [(3, 8), (7,), (2, 3, 8), (8, 1)])
def test_a_bias_of_the_wrong_shape_is_a_clear_error(bias_shape):
    with pytest.raises(ValueError, match=r"bias must be \(O,\) or \(N, O\) with N = 2 images and O = 8"):
        kernels.tap_conv(mx.zeros((2, 5, 5, 4)), mx.zeros((1, 4, 8)), [(0, 0)], 0, (0, 0, 0, 0), mx.zeros(bias_shape))


def test_only_float32_on_the_cpu_is_sent_to_it():
    x = mx.zeros((1, 4, 4, 2))
    assert native.conv_for(x, mx.zeros((1, 2, 2))) is kernels.tap_conv
    assert native.conv_for(x.astype(mx.float16), mx.zeros((1, 2, 2), dtype=mx.float16)) is None
    with pytest.raises(ValueError, match="float32"):
        kernels.tap_conv(x.astype(mx.float16), mx.zeros((1, 2, 2), dtype=mx.float16), [(0, 0)], 0, (0, 0, 0, 0))


def test_an_unknown_instruction_set_names_the_ones_this_cpu_runs():
    with pytest.raises(ValueError, match="this CPU runs " + INSTRUCTION_SETS[0]):
        kernels.use_instruction_set("sse9")


@pytest.mark.parametrize("setting,expected", [("0", "off (MLX_GENERATIVE_NATIVE=0)"), ("1", "mlx_generative_kernels:"),
                                              ("auto", "mlx_generative_kernels:")])
def test_the_environment_switch(setting, expected):
    code = "from mlx_generative.runtime import native; print(native.describe())"
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, native.ENV_VAR: setting},
                         capture_output=True, text=True, check=True).stdout
    assert out.startswith(expected)
