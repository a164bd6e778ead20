"""Using a trained run: sample, reconstruct, encode (and a VAE's posterior), interpolate,
denoise step by step.

Each function takes a run directory, a ``Run`` or a ``(model, config)`` pair, checks
its arguments once, and hands the work to the run's family. Images come back as
uint8 (N, 28, 28).
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np

from ..data.images import as_unit_float, to_uint8
from ..errors import UsageError
from ..families import names_of
from ..families.base import NUM_CLASSES, balanced_labels
from .runs import Run, as_run


def sample(
    run,
    n: int | None = None,
    seed: int = 0,
    sigma: str | None = None,
    sampler: str | None = None,
    steps: int | None = None,
    eta: float | None = None,
    labels=None,
    spacing: str | None = None,
    guidance: float | None = None,
) -> np.ndarray:
    """Draw ``n`` images as uint8 (n, 28, 28). Same seed, same images.

      - VAE: decodes z ~ N(0, I) (the mean image of p(x|z)).
      - DDPM: runs the reverse diffusion chain from pure noise. ``sampler="ddpm"``
        takes all T steps with noise ``sigma`` ("beta" or "posterior"); ``sampler="ddim"``
        takes ``steps`` of them (default all) with DDIM noise ``eta`` (0: deterministic
        given the seed); ``sampler="dpmpp"``, DPM-Solver++(2M), ``steps`` of them without
        noise. ``spacing`` picks which steps DDIM and DPM-Solver++ visit ("uniform" in t,
        "logsnr", "edm"). Each defaults to the run's ``--sampler`` / ``--sample-steps`` /
        ``--sample-spacing`` / ``--sample-eta`` / ``--sigma``.
      - flow: ``sampler`` "euler" or "heun" with ``steps`` equal steps in t.
      - AE: an autoencoder has no prior; we decode draws from a Gaussian fitted to the
        codes of its training images (the run's extras.safetensors). Compare the VAE,
        whose prior is part of the model.
    ``n`` defaults to 64, or for a run trained with ``--conditional`` to 8 per class.
    Conditional runs only:
      - ``labels``: the class of each sample (n of them, or one for all); default every
        class equally often, in class order (8 per row: one row per class).
      - ``guidance``: DDPM classifier-free guidance weight w, eps = (1 + w) eps(x, y)
        - w eps(x, no label); 0 is the plain conditional model. Default: the run's.
    """
    run = as_run(run)
    if not run.family.generative:
        raise UsageError(f"a {run.kind} does not generate images; sample from an {names_of(lambda f: f.generative)} run")
    labels, n = sample_labels(run, labels, n)
    settings = sampling_settings(run, dict(sigma=sigma, sampler=sampler, steps=steps, eta=eta, guidance=guidance,
                                                 spacing=spacing))
    pixels = run.family.sample(run.model, run.config.train, run.extras, n, mx.random.key(seed), labels=labels,
                               settings=settings)
    return to_uint8(pixels)


def sampling_settings(run: Run, overrides: dict):
    """The family's sampling settings for this run, with the overrides that were given
    (not None), each checked against its declaration."""
    given = {k: v for k, v in overrides.items() if v is not None}
    accepted = {option.name: option for option in run.family.sampling_options}
    foreign = [k for k in given if k not in accepted]
    if foreign:
        owners = names_of(lambda f: any(o.name == foreign[0] for o in f.sampling_options))
        raise UsageError(f"{', '.join(foreign)} applies to {owners} runs only, not {run.kind}")
    for name, value in given.items():
        option = accepted[name]
        if option.choices and value not in option.choices:
            raise UsageError(f"{name} must be one of {', '.join(option.choices)}, got {value!r}")
        if option.check is not None and not option.check.ok(value):
            raise UsageError(f"{name} must be {option.check.expected}, got {value!r}")
    return run.family.sampling(run.config.train, given)


def sample_labels(run: Run, labels, n: int | None) -> tuple[np.ndarray | None, int]:
    """Check ``sample``'s labels and count: (int32 labels or None, n)."""
    if labels is None:
        n = (8 * NUM_CLASSES if run.conditional else 64) if n is None else n
        if n < 1:
            raise UsageError(f"n must be >= 1, got {n}")
        return (balanced_labels(n) if run.conditional else None), n
    if not run.conditional:
        raise UsageError(f"labels apply to runs trained with --conditional; this is an unconditional {run.kind} run")
    return check_labels(labels, n, "labels"), (n if n is not None else len(np.atleast_1d(labels)))


def check_labels(labels, n: int | None, name: str = "labels") -> np.ndarray:
    """Class labels as int32: one per image (``n`` of them), or a single one repeated n times."""
    values = np.atleast_1d(np.asarray(labels))
    if values.ndim != 1 or values.size == 0 or not np.issubdtype(values.dtype, np.integer):
        raise UsageError(f"{name} must be class numbers (integers 0-{NUM_CLASSES - 1}), got {labels!r}")
    if values.min() < 0 or values.max() >= NUM_CLASSES:
        raise UsageError(f"{name} must lie in 0-{NUM_CLASSES - 1}, got {int(values.min())}..{int(values.max())}")
    if n is not None:
        if n < 1:
            raise UsageError(f"n must be >= 1, got {n}")
        if len(values) == 1:
            values = np.repeat(values, n)
        elif len(values) != n:
            raise UsageError(f"{name}: {len(values)} labels for {n} images; give one per image, or one for all")
    return values.astype(np.int32)


def denoising_trajectory(run, n: int = 8, seed: int = 0, labels=None, predictions: bool = False,
                         sampler: str | None = None, steps: int | None = None, spacing: str | None = None,
                         eta: float | None = None, sigma: str | None = None, guidance: float | None = None,
                         ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """uint8 (n, steps + 1, 28, 28): x_T ... x_0 for each of n samples, the states the
    sampler passes through (T + 1 of them, or --sample-steps + 1). The last is
    ``sample(run, n, seed, **sampling)``'s image.

    ``sampler``, ``steps``, ``spacing``, ``eta``, ``sigma``, ``guidance``: as ``sample``'s; each
    defaults to the run's. ``predictions``: also return, state for state, the clean image the network
    predicts from it (x0_hat; for a flow x - t v), as the pair (states, predictions); the last
    prediction is x_0 itself. A conditional run draws ``labels`` (default 0, 1, 2, ...).
    """
    run = as_run(run)
    if not run.family.denoises:
        raise UsageError(f"denoising_trajectory needs a {names_of(lambda f: f.denoises)} run, got {run.kind}")
    if labels is None and run.conditional:
        labels = np.arange(n) % NUM_CLASSES
    labels, n = sample_labels(run, labels, n)
    settings = sampling_settings(run, dict(sampler=sampler, steps=steps, spacing=spacing, eta=eta, sigma=sigma,
                                           guidance=guidance))
    out = run.family.sample(run.model, run.config.train, run.extras, n, mx.random.key(seed), labels=labels,
                            settings=settings, trajectory=True, predictions=predictions)
    if predictions:
        states, x0s = out
        return to_uint8(states[..., 0]), to_uint8(x0s[..., 0])
    return to_uint8(out[..., 0])


def _encoder_inputs(run: Run, images, labels, what: str):
    """Check an encoder call's images and labels: (float images, int32 labels or None)."""
    if not run.family.encodes:
        raise UsageError(f"{what} needs an {names_of(lambda f: f.encodes)} run: a {run.kind} has no encoder")
    x = as_unit_float(images)
    if run.conditional:
        if labels is None:
            raise UsageError(f"{what}: this {run.family.title} was trained with --conditional; pass labels= (one per image)")
        return x, check_labels(labels, len(x))
    if labels is not None:
        raise UsageError(f"{what}: labels apply to runs trained with --conditional; this {run.kind} is unconditional")
    return x, None


def reconstruct(run, images, labels=None) -> np.ndarray:
    """AE/VAE: encode and decode images (uint8 (N, 28, 28) or floats in [0, 1]); returns uint8.
    A conditional VAE needs each image's label."""
    run = as_run(run)
    x, labels = _encoder_inputs(run, images, labels, "reconstruct")
    return to_uint8(run.family.reconstruct(run.model, x, labels))


def encode(run, images, labels=None) -> np.ndarray:
    """AE: the codes; VAE: the posterior means mu(x) (mu(x, y) for a conditional VAE, which
    needs each image's label). Returns float32 (N, latent_dim)."""
    run = as_run(run)
    x, labels = _encoder_inputs(run, images, labels, "encode")
    return run.family.encode(run.model, x, labels)


def posterior(run, images, labels=None) -> tuple[np.ndarray, np.ndarray]:
    """VAE: q(z | x) of each image, as (mu, sigma), each float32 (N, latent_dim). ``encode``
    gives mu alone; sigma says how sure the encoder is of each dimension (near 1, the
    prior's: that dimension carries nothing about this image)."""
    run = as_run(run)
    x, labels = _encoder_inputs(run, images, labels, "posterior")
    return run.family.posterior(run.model, x, labels)


def interpolate(run, start, end, steps: int = 10) -> np.ndarray:
    """AE/VAE: decode ``steps`` evenly spaced points on the line between the codes of
    ``start`` and ``end`` (images, paired one to one). Returns uint8 (N, steps, 28, 28).

    The codes are ``encode``'s (the VAE's posterior means). Between two digits an AE
    often decodes blends that are no digit; a VAE, trained to fill its prior, morphs.
    """
    run = as_run(run)
    if not run.family.encodes:
        raise UsageError(f"interpolate needs an {names_of(lambda f: f.encodes)} run: a {run.kind} has no latent code")
    if run.conditional:
        raise UsageError(f"interpolate: a conditional {run.family.title}'s code means something else for every label; "
                         "interpolate unconditional runs")
    if steps < 2:
        raise UsageError(f"steps must be >= 2 (the two ends), got {steps}")
    a, b = encode(run, start), encode(run, end)
    if a.shape != b.shape:
        raise UsageError(f"start and end must hold as many images, got {len(a)} and {len(b)}")
    w = np.linspace(0.0, 1.0, steps, dtype=np.float32)[None, :, None]
    codes = (1.0 - w) * a[:, None] + w * b[:, None]  # (N, steps, latent)
    pixels = run.family.decode(run.model, codes.reshape(-1, codes.shape[-1]))
    return to_uint8(pixels).reshape(len(a), steps, *pixels.shape[1:3])
