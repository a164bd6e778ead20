"""Train a run: from options to a finished run directory (``train``, the API's verb).

``train`` reads top to bottom; each step it takes is one of the small functions
below it. The family supplies the network, the loss, the held-out figures and the
pictures' content; the trainer (trainer.py) knows no family at all.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import sys
import time
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
from mlx.utils import tree_flatten

from ..console import Speaker
from ..data.batches import BatchStream, to_model_input
from ..data.datasets import Dataset, load_dataset
from ..errors import CheckpointError, UsageError
from ..families import get_family
from ..families.base import NUM_CLASSES, Family
from ..runtime import blas, jit, parallel, prebuild
from . import checkpoint, distributed, runconfig, runlock
from .adam import Adam
from .options import TrainOptions, from_overrides, resolve
from .pictures import write_grids, write_progress_frame, write_progress_gif
from .runconfig import DataInfo, RunConfig
from .runs import Run, build_model
from .trainer import TrainingInterrupted, TrainLoop, run_loop


def train(kind: str, options: TrainOptions | None = None, *, resume=None, verbose: bool = True, data=None,
          **overrides) -> Run:
    """Train an ``ae``, ``vae``, ``ddpm`` or ``classifier`` (any registered family); returns the ``Run``.

    ``options``: a ``TrainOptions``, or its fields as keywords (``steps=600``). ``resume``: a run
    directory to continue from its newest checkpoint, with its saved settings (``steps`` may be
    raised). ``verbose``: print what happens (the progress bar is ``options.progress``'s). ``data``:
    the (train, test) ``Dataset`` pair of ``options.dataset``, already loaded (a sweep's).
    """
    family = get_family(kind)
    rank, world = distributed.rank_and_size()  # under mlx.launch; only rank 0 speaks and writes
    say = Speaker(verbose and rank == 0)
    options = from_overrides(kind, overrides) if options is None else options
    saved = saved_run(kind, options, resume, world) if resume else None  # resuming: its settings and network
    opts = saved.train if saved else resolve(kind, options)
    kernels = prebuild.start(f"train {kind}")  # valid options: MLX's first-run kernel builds, in the background
    if opts.shards is None:  # decided here, where training starts: the hardware is known
        opts.shards = parallel.default_shards(opts.batch_size, world)
    if opts.data_dir is not None:  # recorded absolute, so that bin/eval finds the same folder from anywhere
        opts.data_dir = str(Path(opts.data_dir).resolve())
    train_data, test_data = data or load_training_data(opts.dataset, opts.data_dir)
    stream = training_batches(family, opts, train_data, world, say)

    mx.random.seed(opts.seed)  # the weights' initialisation
    model_args = saved.model if saved else family.model_args(opts)
    model = build_model(saved, resume) if saved else family.build(model_args)
    optimizer = Adam(learning_rate(opts))  # with bias correction, as PyTorch and the paper
    run_dir = Path(resume) if resume else (new_run_dir(opts, kind, model, say) if rank == 0 else None)
    heldout = test_data.note or f"{test_data.name} test split"
    config = RunConfig(kind, model_args, opts, DataInfo(train_data.name, len(stream.images), heldout), ranks=world)
    with runlock.held(run_dir if rank == 0 else None):  # one process writes a run at a time
        run = Run(model=model, config=config, run_dir=run_dir)
        start_step, ema = restore_checkpoint(run, optimizer, rank, say) if resume else (0, None)
        if rank == 0:
            runconfig.write(run_dir, config)
        say(f"training {kind} on {len(stream.images)} {train_data.name} images for {opts.steps} steps "
            f"(batch {opts.batch_size}" + (f" per process x {world} processes" if world > 1 else "")
            + (f", split over {opts.shards} CPU streams" if opts.shards > 1 else "") + f") -> {run_dir}")

        loop = training_loop(opts, start_step, ema, rank, world, verbose)
        evaluate = heldout_evaluator(run, test_data, loop, say)
        if rank == 0:
            write_as_it_trains(loop, run, optimizer, evaluate, stream, resumed=bool(resume))
        kernels.wait()
        started = time.perf_counter()
        try:
            run_loop(model, optimizer, family.loss_fn(opts), lambda step: distributed.shard(stream.batch(step), rank, world),
                     loop, family.scalars_at(opts))
        except TrainingInterrupted as stop:
            if rank == 0:  # only rank 0 has a run directory (and wrote the checkpoint)
                say(f"{stop}: checkpoint written to {checkpoint.checkpoint_dir(run_dir, stop.step)}\n"
                    f"resume with: bin/train {kind} --resume {run_dir}")
            raise
        seconds = time.perf_counter() - started
        if rank == 0:  # every rank holds the same weights; rank 0 writes them
            finish_run(run, optimizer, loop, stream, test_data, seconds, start_step, evaluate, say)
        elif loop.ema is not None:
            model.update(loop.ema)
        return run


# ---- the steps of train(), in order ---------------------------------------------------


def saved_run(kind: str, options: TrainOptions, resume, world: int) -> RunConfig:
    """--resume: the run's saved config, its options resolved with this call's steps and progress."""
    run_dir = Path(resume)
    saved = runconfig.read(run_dir)
    if saved.family is not get_family(kind):
        raise UsageError(f"--resume {run_dir}: that run trains a {saved.kind}, not a {kind}")
    if saved.ranks != world:
        raise UsageError(
            f"--resume {run_dir}: that run trained on {saved.ranks} process(es), this is {world}; "
            f"resume with the same number (the global batch would change)"
        )
    opts = saved.train
    opts.steps = options.steps if options.steps is not None else opts.steps
    opts.progress = options.progress
    saved.train = resolve(kind, opts)
    return saved


def load_training_data(dataset: str, data_dir=None) -> tuple[Dataset, Dataset]:
    """The (train, test) splits a run of ``dataset`` trains and evaluates on."""
    return load_dataset(dataset, "train", data_dir), load_dataset(dataset, "test", data_dir)


def training_batches(family: Family, opts: TrainOptions, data: Dataset, world: int, say: Speaker) -> BatchStream:
    """The run's batches, a pure function of (seed, step). Every rank draws the same global
    batch (--batch-size per rank, x ranks) and keeps its shard: the group sees exactly the
    batches one process at the global batch size sees."""
    if opts.limit_train and opts.limit_train > len(data.images):
        say(f"note: --limit-train {opts.limit_train} exceeds the {len(data.images)} training images; using all of them")
    for warning in (blas.warning_line(), jit.warning_line(), distributed.oversubscription_warning(world)):
        if warning:
            say(warning)
    if jit.compiler() and jit.first_run():
        say("note: MLX builds its CPU kernels on this machine's first run (a few seconds, once)")
    labelled = family.takes_labels(opts)
    if labelled:
        check_training_labels(data, "--conditional" if family.is_conditional(opts) else family.name)
    return BatchStream(
        data.images, opts.batch_size * world, opts.seed, limit=opts.limit_train, scale=family.scale,
        binarize=opts.binarize, labels=data.labels if labelled else None, max_shift=family.max_shift,
    )


def check_training_labels(data: Dataset, needed_by: str) -> None:
    """Label-trained models need every training image's class, in 0 .. NUM_CLASSES - 1."""
    labels = data.labels
    if labels is None or len(labels) != len(data.images):
        raise UsageError(f"{needed_by} trains on labels, and the {data.name} training images in {data.source} "
                         "have none (a *train-labels-idx1-ubyte file beside the images)")
    if len(labels) and int(labels.max()) >= NUM_CLASSES:
        raise UsageError(
            f"{needed_by}: the {data.name} labels go up to {int(labels.max())}; the models here know "
            f"{NUM_CLASSES} classes (0-{NUM_CLASSES - 1})"
        )


def learning_rate(opts: TrainOptions):
    """Adam's learning rate: a linear warm-up over --lr-warmup steps (if any), then a constant,
    or cosine decay to 1% of --lr over the rest of the run."""
    warmup = opts.lr_warmup or 0
    if opts.lr_schedule == "cosine":
        after = optim.cosine_decay(opts.lr, max(1, opts.steps - warmup), opts.lr * 0.01)
    else:
        after = opts.lr
    if not warmup:
        return after
    # From lr / warmup at step 0 (not 0: the first step then moves the weights too).
    rise = optim.linear_schedule(opts.lr / warmup, opts.lr, warmup)
    return optim.join_schedules([rise, after if callable(after) else (lambda _: mx.array(after))], [warmup])


def run_size_bytes(model: nn.Module, opts: TrainOptions) -> int:
    """Disk a run needs: weights, then weights + Adam's two moments per kept checkpoint
    (one more while the newest is written), plus ~2 MB of grids and metrics."""
    weights = 4 * sum(v.size for _, v in tree_flatten(model.parameters()))
    return weights * (1 + 3 * (opts.keep_checkpoints + 1)) + 2_000_000


def check_free_space(directory: Path, needed: int, flag: str) -> None:
    """Fail before training, not at the first checkpoint, when the disk cannot hold the run."""
    probe = Path(directory)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < needed:
        raise UsageError(f"{flag} {directory}: only {free / 1e6:.1f} MB free, a run needs about {needed / 1e6:.1f} MB")


def new_run_dir(opts: TrainOptions, kind: str, model: nn.Module, say: Speaker) -> Path:
    """A fresh, writable run directory under --out (--name, or kind-date-time; "-2"... if taken)."""
    out = Path(opts.out)
    check_free_space(out, run_size_bytes(model, opts), "--out")
    base = opts.name or f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        out.mkdir(parents=True, exist_ok=True)
        for i in itertools.count(1):
            run_dir = out / (base if i == 1 else f"{base}-{i}")
            try:
                run_dir.mkdir()  # atomic: two runs started at once never share a directory
                break
            except FileExistsError:
                continue
        probe = run_dir / ".write-test"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as e:
        raise UsageError(f"--out {out}: cannot create a run directory there ({e.strerror})") from None
    if opts.name and run_dir.name != opts.name:
        say(f"note: {out / opts.name} already exists; this run is {run_dir}")
    return run_dir


def write_as_it_trains(loop: TrainLoop, run: Run, optimizer, evaluate, stream: BatchStream, resumed: bool) -> None:
    """Rank 0's part: the metrics, checkpoints, progress frames and held-out figures written
    while it trains."""
    run_dir, opts = run.run_dir, run.config.train
    loop.resume_hint = f"resume with the same launch and: bin/train {run.kind} --resume {run_dir}"
    loop.checkpointed = loop.start_step if resumed else None
    loop.on_log = lambda step, record: checkpoint.append_metrics(run_dir, record)

    def on_checkpoint(step: int) -> None:
        checkpoint.save_checkpoint(run_dir, step, run.model, optimizer, opts.keep_checkpoints, ema=loop.ema)
        if run.family.generative:
            progress_frame(run, loop, stream, step)

    loop.on_checkpoint = on_checkpoint
    loop.on_eval = evaluate


PROGRESS_FIT_IMAGES = 2048  # training images the AE's latent Gaussian is fitted to for a progress frame


def progress_frame(run: Run, loop: TrainLoop, stream: BatchStream, step: int) -> None:
    """progress.gif's frame of this checkpoint: the fixed-seed samples of the weights that will
    be sampled (the EMA when there is one), with statistics fitted to them (the AE's)."""
    with swapped_weights(run.model, loop.ema):
        extras = run.family.fit_extras(run.model, to_model_input(stream.images[:PROGRESS_FIT_IMAGES], run.family.scale))
        write_progress_frame(run, step, extras)


def restore_checkpoint(run: Run, optimizer, rank: int, say: Speaker) -> tuple[int, dict | None]:
    """--resume: the newest checkpoint's weights and optimizer state; (its step, its EMA)."""
    if rank == 0:
        check_free_space(run.run_dir, run_size_bytes(run.model, run.config.train), "--resume")
    latest = checkpoint.list_checkpoints(run.run_dir)
    if not latest:
        raise CheckpointError(f"{run.run_dir}: no complete checkpoint to resume from")
    step, ema = checkpoint.load_checkpoint(latest[-1], run.model, optimizer)
    if rank == 0:
        checkpoint.truncate_metrics(run.run_dir, step)
    say(f"resuming {run.run_dir} from step {step}")
    return step, ema


def training_loop(opts: TrainOptions, start_step: int, ema, rank: int, world: int, verbose: bool) -> TrainLoop:
    return TrainLoop(
        steps=opts.steps, seed=opts.seed, start_step=start_step, log_every=opts.log_every,
        checkpoint_every=opts.checkpoint_every, eval_every=opts.eval_every, clip_grad_norm=opts.clip_grad_norm,
        ema_decay=opts.ema_decay, ema_warmup=opts.ema_warmup, ema=ema,
        batch_size=opts.batch_size * world,  # images/s of the whole group
        rank=rank, world_size=world, shards=opts.shards,
        progress=rank == 0 and opts.progress and (verbose or sys.stderr.isatty()),
    )


@contextlib.contextmanager
def swapped_weights(model: nn.Module, weights: dict | None):
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


def heldout_evaluator(run: Run, test_data: Dataset, loop: TrainLoop, say: Speaker):
    """``evaluate(step)``: the family's held-out figures of the weights that will be sampled
    (the EMA when there is one), appended to metrics.jsonl."""
    x = to_model_input(test_data.images, run.family.scale)

    def evaluate(step: int) -> dict:
        run.model.eval()  # dropout off (the classifier's); the compiled step re-enables it
        with swapped_weights(run.model, loop.ema):
            metrics = run.family.heldout(run.model, x, run.config.train, labels=test_data.labels)
        run.model.train()
        record = {"step": step, "split": "test", **metrics}
        checkpoint.append_metrics(run.run_dir, record)
        say(f"step {step}: held-out {format_metrics(record)}")
        return record

    return evaluate


def finish_run(run: Run, optimizer, loop: TrainLoop, stream: BatchStream, test_data: Dataset, seconds: float,
               start_step: int, evaluate, say: Speaker) -> None:
    """Record the time, the last checkpoint, the weights to sample from, fitted statistics,
    the final held-out figures and the pictures."""
    run_dir, opts = run.run_dir, run.config.train
    # Training time of this invocation (a resumed run has one record per part).
    checkpoint.append_metrics(run_dir, {"step": opts.steps, "split": "wall", "from_step": start_step,
                                        "seconds": round(seconds, 1)})
    # The checkpoint keeps the raw weights and the EMA apart, so a resume continues both;
    # model.safetensors holds the weights to sample from: the EMA when there is one.
    checkpoint.save_checkpoint(run_dir, opts.steps, run.model, optimizer, opts.keep_checkpoints, ema=loop.ema)
    if loop.ema is not None:
        run.model.update(loop.ema)
    checkpoint.save_weights(run_dir / checkpoint.WEIGHTS, run.model)
    run.extras = run.family.fit_extras(run.model, to_model_input(stream.images, run.family.scale))
    if run.extras:
        checkpoint.write_arrays(run_dir / checkpoint.EXTRAS, run.extras)
    final = evaluate(opts.steps)
    # The guide's grid goes beside the run directory: a resumed run may have moved since its
    # config recorded --out, and that folder may be gone.
    grids = write_grids(run, test_data.images, run_dir.parent, test_data.labels) if run.family.generative else []
    if run.family.generative:
        grids.append(write_progress_gif(run_dir, opts.steps))
    pictures = "\n  pictures: " + ", ".join(str(p) for p in grids) if grids else ""
    say(f"done in {seconds:.1f} s: {run_dir}\n  held-out: {format_metrics(final)}{pictures}")


def format_metrics(metrics: dict) -> str:
    return "  ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k not in ("step", "split"))

