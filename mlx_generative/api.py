"""The Python API: train, load, sample, reconstruct, encode. The CLI is a thin layer over it."""

from __future__ import annotations

import contextlib
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_flatten

from . import _blas, checkpoint, distributed
from .batches import BatchStream, to_model_input
from .datasets import load_dataset
from .diffusion import SAMPLERS, SIGMAS
from .errors import CheckpointError, UsageError
from .images import as_unit_float, interleave_rows, save_grid, to_uint8
from .kinds import KINDS, NUM_CLASSES, balanced_labels, decode_pixels, is_conditional
from .options import TrainOptions, check_kind_only
from .trainer import TrainingInterrupted, TrainLoop
from .trainer import train as run_training_loop

__version__ = "0.1.0"
GRID_SEED = 0  # the seed of the sample grids written after training


@dataclass
class Run:
    """A trained model with its config; unpacks as ``model, config = load(run_dir)``."""

    model: nn.Module
    config: dict
    run_dir: Path | None = None
    extras: dict = field(default_factory=dict)  # fitted statistics, e.g. the AE's latent Gaussian

    @property
    def kind(self) -> str:
        return self.config["kind"]

    @property
    def conditional(self) -> bool:
        """Trained with --conditional: samples, encodings and reconstructions take labels."""
        return is_conditional(self.config)

    def __iter__(self):
        yield self.model
        yield self.config


def _say(message: str, verbose: bool) -> None:
    if verbose:
        print(message, file=sys.stderr, flush=True)


# ---- loading ------------------------------------------------------------------------


def load(run_dir) -> Run:
    """Rebuild a trained model from a run directory (config.json + model.safetensors)."""
    run_dir = Path(run_dir)
    config = checkpoint.load_config(run_dir)
    kind = KINDS.get(config["kind"])
    if kind is None:
        raise CheckpointError(
            f"{run_dir / checkpoint.CONFIG}: unknown model kind {config['kind']!r} "
            f"(expected one of {', '.join(KINDS)})"
        )
    try:
        model_args = kind.args_cls.from_dict(config["model"])
        model = kind.build(model_args)
    except Exception as e:  # bad types or values surface from mlx as TypeError/ValueError/RuntimeError
        raise CheckpointError(f"{run_dir / checkpoint.CONFIG}: invalid model settings ({e})") from None
    kind.check_config(config, run_dir / checkpoint.CONFIG)
    checkpoint.load_weights(run_dir / checkpoint.WEIGHTS, model)
    extras_path = run_dir / checkpoint.EXTRAS
    extras = checkpoint.read_arrays(extras_path) if extras_path.exists() else {}
    return Run(model=model, config=config, run_dir=run_dir, extras=extras)


def _as_run(run) -> Run:
    if isinstance(run, Run):
        return run
    if isinstance(run, (str, Path)):
        return load(run)
    if isinstance(run, tuple) and len(run) == 2:
        return Run(model=run[0], config=run[1])
    raise UsageError(f"expected a run directory, a Run or a (model, config) pair, got {type(run).__name__}")


# ---- using a trained model ----------------------------------------------------------


def sample(
    run,
    n: int | None = None,
    seed: int = 0,
    sigma: str | None = None,
    sampler: str | None = None,
    steps: int | None = None,
    eta: float | None = None,
    labels=None,
    guidance: float | None = None,
) -> np.ndarray:
    """Draw ``n`` images as uint8 (n, 28, 28). Same seed, same images.

    ``run`` is a run directory, a ``Run`` from ``train``/``load``, or ``(model, config)``.
      - VAE: decodes z ~ N(0, I) (the mean image of p(x|z)).
      - DDPM: runs the reverse diffusion chain from pure noise. ``sampler="ddpm"``
        takes all T steps with noise ``sigma`` ("beta" or "posterior"; default: the
        run's); ``sampler="ddim"`` takes ``steps`` of them (default all) with DDIM
        noise ``eta`` (0: deterministic given the seed). All three default to the
        run's ``--sampler`` / ``--sample-steps`` / ``--sample-eta`` (plain DDPM unless it was
        trained with them; eta 0).
      - AE: an autoencoder has no prior; we decode draws from a Gaussian fitted
        to the codes of its training images (stored in the run's
        extras.safetensors). Compare with the VAE, whose prior is part of the model.
    ``n`` defaults to 64, or for a run trained with ``--conditional`` to 8 per class.
    Conditional runs only:
      - ``labels``: the class of each sample (n of them, or one for all); default
        every class equally often, in class order (8 per row: one row per class).
      - ``guidance``: DDPM classifier-free guidance weight w, eps = (1 + w) eps(x, y)
        - w eps(x, no label); 0 is the plain conditional model. Default: the run's.
    """
    run = _as_run(run)
    if not KINDS[run.kind].generative:
        raise UsageError(f"a {run.kind} does not generate images; sample from an ae, vae or ddpm run")
    labels, n = sample_labels(run, labels, n)
    options = _ddpm_options(run, sigma, sampler, steps, eta)
    if guidance is not None:
        if run.kind != "ddpm" or not run.conditional:
            raise UsageError(f"guidance applies to ddpm runs trained with --conditional, not this {_describe_kind(run)}")
        if not guidance >= 0:
            raise UsageError(f"guidance must be >= 0, got {guidance}")
        options["guidance"] = float(guidance)
    if labels is not None:
        options["labels"] = labels
    pixels = KINDS[run.kind].sample(run.model, run.config, run.extras, n, mx.random.key(seed), **options)
    return to_uint8(pixels)


def _describe_kind(run: Run) -> str:
    return f"{'conditional ' if run.conditional else ''}{run.kind} run"


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


def _ddpm_options(run: Run, sigma, sampler, steps, eta) -> dict:
    """Check the diffusion-only sampling options and return those that were given."""
    given = {k: v for k, v in dict(sigma=sigma, sampler=sampler, steps=steps, eta=eta).items() if v is not None}
    if not given:
        return {}
    if run.kind != "ddpm":
        raise UsageError(f"{', '.join(given)} applies to ddpm runs only, not {run.kind}")
    if sigma is not None and sigma not in SIGMAS:
        raise UsageError(f"sigma must be one of {', '.join(SIGMAS)}, got {sigma!r}")
    if sampler is not None and sampler not in SAMPLERS:
        raise UsageError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    if (steps is not None or eta is not None) and (sampler or KINDS["ddpm"].default_sampler(run.config)) != "ddim":
        raise UsageError("steps and eta apply to sampler='ddim' only (DDPM always takes all T steps)")
    if steps is not None and steps < 1:
        raise UsageError(f"steps must be >= 1, got {steps}")
    if eta is not None and eta < 0:
        raise UsageError(f"eta must be >= 0, got {eta}")
    return given


def denoising_trajectory(run, n: int = 8, seed: int = 0, labels=None) -> np.ndarray:
    """DDPM only: uint8 (n, steps + 1, 28, 28), x_T ... x_0 for each of n samples (steps: T, or
    the run's DDIM --sample-steps).

    A conditional run draws ``labels`` (default 0, 1, 2, ...) at its own guidance weight.
    """
    run = _as_run(run)
    if run.kind != "ddpm":
        raise UsageError(f"denoising_trajectory needs a ddpm run, got {run.kind}")
    if labels is None and run.conditional:
        labels = np.arange(n) % NUM_CLASSES
    labels, n = sample_labels(run, labels, n)
    options = {} if labels is None else {"labels": labels}
    states = KINDS["ddpm"].sample(run.model, run.config, run.extras, n, mx.random.key(seed), trajectory=True, **options)
    return to_uint8(states[..., 0])


def _encoder_inputs(run: Run, images, labels, what: str):
    """Check an AE/VAE call's images and labels: (float images, int32 labels or None)."""
    if run.kind not in ("ae", "vae"):
        raise UsageError(f"{what} needs an ae or vae run: a {run.kind} has no encoder")
    x = as_unit_float(images)
    if run.conditional:
        if labels is None:
            raise UsageError(f"{what}: this VAE was trained with --conditional; pass labels= (one per image)")
        return x, check_labels(labels, len(x))
    if labels is not None:
        raise UsageError(f"{what}: labels apply to runs trained with --conditional; this {run.kind} is unconditional")
    return x, None


def reconstruct(run, images, labels=None) -> np.ndarray:
    """AE/VAE: encode and decode images (uint8 (N, 28, 28) or floats in [0, 1]); returns uint8.
    A conditional VAE needs each image's label."""
    run = _as_run(run)
    x, labels = _encoder_inputs(run, images, labels, "reconstruct")
    return to_uint8(KINDS[run.kind].reconstruct(run.model, x, labels))


def encode(run, images, labels=None) -> np.ndarray:
    """AE: the codes; VAE: the posterior means mu(x) (mu(x, y) for a conditional VAE, which
    needs each image's label). Returns float32 (N, latent_dim)."""
    run = _as_run(run)
    x, labels = _encoder_inputs(run, images, labels, "encode")
    return KINDS[run.kind].encode(run.model, x, labels)


def interpolate(run, start, end, steps: int = 10) -> np.ndarray:
    """AE/VAE: decode ``steps`` evenly spaced points on the line between the codes of
    ``start`` and ``end`` (images, paired one to one). Returns uint8 (N, steps, 28, 28).

    The codes are ``encode``'s (the VAE's posterior means). Between two digits an AE
    often decodes blends that are no digit; a VAE, trained to fill its prior, morphs.
    """
    run = _as_run(run)
    if run.kind not in ("ae", "vae"):
        raise UsageError(f"interpolate needs an ae or vae run: a {run.kind} has no latent code")
    if run.conditional:
        raise UsageError("interpolate: a conditional VAE's code means something else for every label; "
                         "interpolate unconditional runs")
    if steps < 2:
        raise UsageError(f"steps must be >= 2 (the two ends), got {steps}")
    a, b = encode(run, start), encode(run, end)
    if a.shape != b.shape:
        raise UsageError(f"start and end must hold as many images, got {len(a)} and {len(b)}")
    w = np.linspace(0.0, 1.0, steps, dtype=np.float32)[None, :, None]
    codes = (1.0 - w) * a[:, None] + w * b[:, None]  # (N, steps, latent)
    pixels = decode_pixels(run.model, codes.reshape(-1, codes.shape[-1]))
    return to_uint8(pixels).reshape(len(a), steps, *pixels.shape[1:3])


# ---- training -----------------------------------------------------------------------


def load_training_data(dataset: str, data_dir=None):
    """The (train, test) splits a run of ``dataset`` trains and evaluates on."""
    return load_dataset(dataset, "train", data_dir), load_dataset(dataset, "test", data_dir)


def check_training_labels(data, needed_by: str) -> None:
    """Label-trained models need every training image's class, in 0 .. NUM_CLASSES - 1."""
    labels = data.labels
    if labels is None or len(labels) != len(data.images):
        raise UsageError(f"{needed_by} trains on labels, and the {data.name} training images have none")
    if len(labels) and int(labels.max()) >= NUM_CLASSES:
        raise UsageError(
            f"{needed_by}: the {data.name} labels go up to {int(labels.max())}; the models here know "
            f"{NUM_CLASSES} classes (0-{NUM_CLASSES - 1})"
        )


def run_size_bytes(model: nn.Module, keep_checkpoints: int) -> int:
    """Disk a run needs: weights, then weights + Adam's two moments per kept checkpoint
    (one more while the newest is written), plus ~2 MB of grids and metrics."""
    weights = 4 * sum(v.size for _, v in tree_flatten(model.parameters()))
    return weights * (1 + 3 * (keep_checkpoints + 1)) + 2_000_000


def check_free_space(directory: Path, needed: int, flag: str = "--out") -> None:
    """Fail before training, not at the first checkpoint, when the disk cannot hold the run."""
    probe = Path(directory)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < needed:
        raise UsageError(
            f"{flag} {directory}: only {free / 1e6:.1f} MB free, a run needs about {needed / 1e6:.1f} MB"
        )


def _new_run_dir(out: Path, kind: str, name: str | None) -> Path:
    base = name or f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir, i = out / base, 1
    while run_dir.exists():
        i += 1
        run_dir = out / f"{base}-{i}"
    try:
        run_dir.mkdir(parents=True)
        probe = run_dir / ".write-test"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as e:
        raise UsageError(f"--out {out}: cannot create a run directory there ({e.strerror})") from None
    return run_dir


def write_grids(
    run: Run, heldout_images: np.ndarray, out: Path | None = None, heldout_labels: np.ndarray | None = None
) -> list[Path]:
    """The pictures every run gets: reconstructions beside originals, and samples
    (a conditional run's: one row per class)."""
    written = []
    kind = run.kind
    if kind in ("ae", "vae"):
        originals = heldout_images[:32]
        labels = heldout_labels[:32] if run.conditional else None
        recon = reconstruct(run, originals, labels)
        pairs = interleave_rows(originals, recon, per_row=8)
        written.append(save_grid(pairs, run.run_dir / "reconstructions.png", nrow=8))
    written.append(save_grid(sample(run, seed=GRID_SEED), run.run_dir / "samples.png", nrow=8))
    if kind == "ddpm":
        strip = denoising_trajectory(run, n=8, seed=GRID_SEED)  # (8, T+1, 28, 28)
        written.append(save_grid(strip.reshape(-1, *strip.shape[2:]), run.run_dir / "denoising.png", nrow=strip.shape[1]))
        if out is not None:  # the guide promises outputs/ddpm_grid.png
            shutil.copyfile(run.run_dir / "samples.png", out / "ddpm_grid.png")
            written.append(out / "ddpm_grid.png")
    return written


@contextlib.contextmanager
def _weights(model: nn.Module, weights: dict | None):
    """Temporarily give ``model`` other weights (the EMA) for an evaluation."""
    if weights is None:
        yield
        return
    current = model.trainable_parameters()
    model.update(weights)
    try:
        yield
    finally:
        model.update(current)


def _format_metrics(metrics: dict) -> str:
    return "  ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k not in ("step", "split"))


def train(
    kind: str, options: TrainOptions | None = None, *, resume=None, verbose: bool = True, data=None, **overrides
) -> Run:
    """Train an ``ae``, ``vae``, ``ddpm`` or ``classifier``; returns the ``Run``. See TrainOptions.

    The classifier is not a generative model: it is the feature extractor of
    ``evaluate``'s sample metrics.

    ``resume``: a run directory to continue from its newest checkpoint. Its saved
    settings are used; only ``steps`` may be raised.
    ``verbose``: print what happens. The progress bar is ``options.progress``'s: it
    shows on a terminal even when ``verbose`` is off (a sweep prints its own lines).
    ``data``: the (train, test) ``Dataset`` pair already loaded for ``options.dataset``,
    so a sweep reads its data once.
    """
    if kind not in KINDS:
        raise UsageError(f"unknown model {kind!r}; choose one of: {', '.join(KINDS)}")
    if options is None:
        try:
            options = TrainOptions(**overrides)
        except TypeError as e:
            raise UsageError(f"train(): {e}") from None
        # e.g. T=50 for a vae: a mistake worth naming (a default value given explicitly is harmless)
        check_kind_only(kind, [k for k, v in overrides.items() if v != getattr(TrainOptions(), k)])
    spec = KINDS[kind]
    # Under mlx.launch: this process's place in the group. Only rank 0 speaks and writes.
    rank, world = distributed.rank_and_size()
    verbose = verbose and rank == 0
    if resume is not None:
        run_dir = Path(resume)
        saved = checkpoint.load_config(run_dir)
        if saved["kind"] != kind:
            raise UsageError(f"--resume {run_dir}: that run trains a {saved['kind']}, not a {kind}")
        steps, progress = options.steps, options.progress
        options = TrainOptions(**saved["train"])
        options.steps = steps if steps is not None else options.steps
        options.progress = progress
        opts = options.resolved(kind, processes=world)
        saved_ranks = saved.get("distributed", {}).get("ranks", 1)
        if saved_ranks != world:
            raise UsageError(
                f"--resume {run_dir}: that run trained on {saved_ranks} process(es), this is {world}; "
                f"resume with the same number (the global batch would change)"
            )
    else:
        opts = options.resolved(kind, processes=world)
        run_dir = None

    if data is None:
        data = load_training_data(opts.dataset, opts.data_dir)
    train_data, test_data = data
    if opts.limit_train and opts.limit_train > len(train_data.images):
        _say(f"note: --limit-train {opts.limit_train} exceeds the {len(train_data.images)} training images; using all of them", verbose)
    for warning in (_blas.warning_line(), distributed.oversubscription_warning(world)):
        if warning:
            _say(warning, verbose)
    # Every rank draws the same global batch (--batch-size per rank, x ranks) and keeps its
    # shard: the group sees exactly the batches one process at the global batch size sees.
    if spec.takes_labels(opts):
        check_training_labels(train_data, "--conditional" if opts.conditional else kind)
    stream = BatchStream(
        train_data.images, opts.batch_size * world, opts.seed,
        limit=opts.limit_train, scale=spec.scale, binarize=opts.binarize,
        labels=train_data.labels if spec.takes_labels(opts) else None, max_shift=spec.max_shift,
    )
    mx.random.seed(opts.seed)
    model_args = spec.model_args(opts)
    model = spec.build(model_args)
    # bias_correction as in PyTorch and the Adam paper; without it the first steps are ~3x lr.
    optimizer = optim.Adam(learning_rate=spec.learning_rate(opts), bias_correction=True)

    out = Path(opts.out)
    if rank == 0:
        check_free_space(run_dir or out, run_size_bytes(model, opts.keep_checkpoints), "--resume" if run_dir else "--out")
        if run_dir is None:
            run_dir = _new_run_dir(out, kind, opts.name)
    config = {
        "kind": kind,
        "model": model_args.to_dict(),
        "train": opts.to_dict(),
        "data": {
            "dataset": train_data.name,
            "scale": spec.scale,
            "binarize": opts.binarize,
            "train_images": len(stream.images),
            "heldout": test_data.note or f"{test_data.name} test split",
        },
        "version": __version__,
        **spec.extra_config(opts),
    }
    if world > 1:
        config["distributed"] = {"ranks": world, "batch_per_rank": opts.batch_size, "global_batch": opts.batch_size * world}
    run = Run(model=model, config=config, run_dir=run_dir)
    start_step, resumed_ema = 0, None
    if resume is not None:
        latest = checkpoint.list_checkpoints(run_dir)
        if not latest:
            raise CheckpointError(f"{run_dir}: no complete checkpoint to resume from")
        start_step, resumed_ema = checkpoint.load_checkpoint(latest[-1], model, optimizer)
        if rank == 0:
            checkpoint.truncate_metrics(run_dir, start_step)
        _say(f"resuming {run_dir} from step {start_step}", verbose)
    if rank == 0:
        checkpoint.save_config(run_dir, config)
    heldout_x = to_model_input(test_data.images, spec.scale)
    _say(
        f"training {kind} on {len(stream.images)} {train_data.name} images "
        f"for {opts.steps} steps (batch {opts.batch_size}"
        + (f" per process x {world} processes" if world > 1 else "")
        + (f", split over {opts.shards} CPU streams" if opts.shards > 1 else "") + f") -> {run_dir}",
        verbose,
    )

    def evaluate(step: int) -> dict:
        model.eval()  # dropout off (the classifier's); the compiled step re-enables it
        with _weights(model, loop.ema):  # the weights that will be sampled from
            metrics = spec.heldout(model, heldout_x, config, labels=test_data.labels)
        model.train()
        record = {"step": step, "split": "test", **metrics}
        checkpoint.append_metrics(run_dir, record)
        _say(f"step {step}: held-out {_format_metrics(record)}", verbose)
        return record

    loop = TrainLoop(
        steps=opts.steps,
        seed=opts.seed,
        start_step=start_step,
        log_every=opts.log_every,
        checkpoint_every=opts.checkpoint_every,
        eval_every=opts.eval_every,
        clip_grad_norm=opts.clip_grad_norm,
        ema_decay=opts.ema_decay,
        ema=resumed_ema,
        batch_size=opts.batch_size * world,  # images/s of the whole group
        rank=rank,
        world_size=world,
        shards=opts.shards,
        progress=rank == 0 and opts.progress and (verbose or sys.stderr.isatty()),
    )
    if rank == 0:
        loop.on_log = lambda step, record: checkpoint.append_metrics(run_dir, record)
        loop.on_checkpoint = lambda step: checkpoint.save_checkpoint(
            run_dir, step, model, optimizer, opts.keep_checkpoints, ema=loop.ema
        )
        loop.on_eval = evaluate
    started = time.perf_counter()
    try:
        run_training_loop(
            model, optimizer, spec.loss_fn(config), lambda step: distributed.shard(stream.batch(step), rank, world),
            loop, spec.scalars_at(opts),
        )
    except TrainingInterrupted as stop:
        if rank == 0:  # only rank 0 has a run directory (and wrote the checkpoint)
            _say(
                f"{stop}: checkpoint written to {checkpoint.checkpoint_dir(run_dir, stop.step)}\n"
                f"resume with: bin/train {kind} --resume {run_dir}",
                verbose,
            )
        raise
    seconds = time.perf_counter() - started
    if rank != 0:  # rank 0 holds the same weights and writes the run
        if loop.ema is not None:
            model.update(loop.ema)
        return run
    # Training time of this invocation (a resumed run has one record per part).
    checkpoint.append_metrics(
        run_dir, {"step": opts.steps, "split": "wall", "from_step": start_step, "seconds": round(seconds, 1)}
    )

    checkpoint.save_checkpoint(run_dir, opts.steps, model, optimizer, opts.keep_checkpoints, ema=loop.ema)
    if loop.ema is not None:
        model.update(loop.ema)  # model.safetensors holds the weights to sample from: the EMA
    checkpoint.save_weights(run_dir / checkpoint.WEIGHTS, model)
    if kind == "ae":
        run.extras = spec.fit_prior(model, to_model_input(stream.images, spec.scale))
        checkpoint.write_arrays(run_dir / checkpoint.EXTRAS, run.extras)
    final = evaluate(opts.steps)
    grids = write_grids(run, test_data.images, out, test_data.labels) if spec.generative else []
    pictures = "\n  pictures: " + ", ".join(str(p) for p in grids) if grids else ""
    _say(f"done in {seconds:.1f} s: {run_dir}\n  held-out: {_format_metrics(final)}{pictures}", verbose)
    return run
