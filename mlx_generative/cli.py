"""Command line: `python -m mlx_generative train|sample|eval|sweep|report|info|fetch-data ...` and the bin/ launchers.

Only argument parsing lives here; every command calls the Python API. Errors
the package raises on purpose print as one line (exit status 2), never a traceback.
"""

from __future__ import annotations

import argparse
import sys

from .diffusion import SAMPLERS, SCHEDULES, SIGMAS
from .errors import MlxGenerativeError, UsageError
from .options import KIND_NAMES, check_kind_only

COMMANDS = ("train", "sample", "eval", "sweep", "report", "info", "fetch-data")


def _train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bin/train",
        description="Train an autoencoder (ae), a VAE (vae) or a tiny DDPM (ddpm) on MNIST-style "
        "images. Each run gets its own directory under --out with config.json, "
        "model.safetensors, metrics.jsonl, checkpoints/ and PNG grids.",
        epilog="examples:\n"
        "  bin/train ae --steps 500 --latent-dim 64 --limit-train 10000\n"
        "  bin/train vae --steps 600 --warmup-steps 200 --latent-dim 32 --limit-train 10000\n"
        "  bin/train ddpm --steps 800 --T 6 --batch-size 128 --limit-train 10000\n"
        "  bin/train vae --conditional                  # then: bin/sample RUN_DIR --labels 7\n"
        "  bin/train classifier --dataset mnist",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS,  # so we know which flags were given
    )
    p.add_argument("kind", choices=KIND_NAMES, help="model family to train; 'classifier' trains the "
                   "CNN whose features bin/eval's sample metrics use")
    g = p.add_argument_group("training")
    g.add_argument("--steps", type=int, help="optimizer steps (default: ae 500, vae 600, ddpm 800, "
                   "classifier 2000)")
    g.add_argument("--batch-size", type=int, help="images per step (default 128)")
    g.add_argument("--lr", type=float, help="Adam learning rate (default: ae 3e-3, vae 2e-3, ddpm 4e-3, "
                   "classifier 1e-3)")
    g.add_argument("--lr-schedule", choices=("constant", "cosine"), help="constant, or cosine decay "
                   "to 1%% of --lr over the run (default: constant; classifier cosine)")
    g.add_argument("--seed", type=int, help="seeds weights, data order and noise (default 0)")
    g.add_argument("--clip-grad-norm", type=float, help="clip the global gradient norm to this value")
    g.add_argument("--ema-decay", type=float, help="keep an exponential moving average of the weights "
                   "and save/sample/evaluate it (default: ddpm 0.995; others 0, off)")
    g.add_argument("--ranks", type=int, metavar="N", help="data-parallel over N processes on this machine: "
                   "starts `mlx.launch -n N` (ring backend, free local ports) for you; --batch-size is per "
                   "process, the global batch N times it (see the README for several machines)")
    g.add_argument("--shards", type=int, help="split each batch over this many CPU cores, each on its "
                   "own MLX stream (default: every core; 1 on a GPU). Noise draws depend on it")
    g.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its newest checkpoint "
                   "(its saved settings are used; --steps may be raised)")
    m = p.add_argument_group("model")
    m.add_argument("--latent-dim", type=int, help="ae/vae latent size (default: ae 64, vae 32)")
    m.add_argument("--channels", type=int, help="ae/vae: convolution channels after the first "
                   "downsampling; the second has twice as many (default 32, then 64). Wider fits "
                   "better and costs step time")
    m.add_argument("--loss", choices=["mse", "bce"], help="ae: reconstruction loss (default mse)")
    m.add_argument("--warmup-steps", type=int, help="vae: steps over which the KL weight rises "
                   "linearly from 0 to --beta-max (default 200)")
    m.add_argument("--beta-max", type=float, help="vae: final KL weight; 1 is the true ELBO (default 1)")
    m.add_argument("--binarize", choices=["none", "dynamic"], help="vae: 'dynamic' re-samples "
                   "binary pixels every epoch, for likelihoods comparable with the literature")
    m.add_argument("--conditional", action="store_true", help="vae/ddpm: condition on the class label, "
                   "so you can ask for a given digit (bin/sample --labels 7)")
    m.add_argument("--label-dropout", type=float, help="ddpm --conditional: probability of training an "
                   "image with no label, so the one network learns the unconditional noise that "
                   "classifier-free guidance needs (default 0.1)")
    m.add_argument("--guidance", type=float, help="ddpm --conditional: classifier-free guidance weight w "
                   "that samples use by default; 0 is plain conditional sampling (default 3)")
    m.add_argument("--T", type=int, help="ddpm: number of diffusion steps (default 6)")
    m.add_argument("--sampler", choices=SAMPLERS, help="ddpm: how this run's samples are drawn unless "
                   "bin/sample or bin/eval say otherwise: ddpm (all T steps, the default) or ddim")
    m.add_argument("--sample-steps", type=int, help="ddpm --sampler ddim: reverse steps per sample "
                   "(default all T); e.g. --T 1000 --sampler ddim --sample-steps 50")
    m.add_argument("--sample-eta", type=float, help="ddpm --sampler ddim: noise added at each reverse "
                   "step, 0 deterministic (the default) to 1 as much as DDPM; more noise corrects more "
                   "of the network's mistakes")
    m.add_argument("--attention", action="store_true", help="ddpm: add a self-attention layer at the "
                   "UNet's 7x7 middle, so each position reads every other directly (about 7%% slower per step)")
    m.add_argument("--schedule", choices=SCHEDULES, help="ddpm: noise schedule (default cosine; the guide's is linear)")
    m.add_argument("--sigma", choices=SIGMAS, help="ddpm: reverse-step noise: the guide's "
                   "sqrt(beta_t), or the posterior's sqrt(beta~_t), which leaves far less noise at small T "
                   "(default posterior)")
    d = p.add_argument_group("data and output")
    d.add_argument("--dataset", help="mnist (default; the shipped 10k sample when the full set "
                   "is absent), mnist-sample or fashion-mnist")
    d.add_argument("--data-dir", help="folder holding the dataset's IDX files")
    d.add_argument("--limit-train", type=int, help="use only the first N training images")
    d.add_argument("--out", help="parent folder of run directories (default outputs)")
    d.add_argument("--name", help="run directory name (default <kind>-<date>-<time>)")
    d.add_argument("--log-every", type=int, help="steps per metrics.jsonl record (default 10)")
    d.add_argument("--eval-every", type=int, help="held-out evaluation interval (default: a fifth of the run)")
    d.add_argument("--checkpoint-every", type=int, help="checkpoint interval (default: a fifth of the run)")
    d.add_argument("--keep-checkpoints", type=int, help="how many checkpoints to keep (default 2)")
    d.add_argument("--no-progress", dest="progress", action="store_false", help="no progress output")
    return p


def train_main(argv: list[str]) -> int:
    args = vars(_train_parser().parse_args(argv))
    ranks = args.pop("ranks", None)
    if ranks is not None:
        return _launch(ranks, argv)
    kind = args.pop("kind")
    resume = args.pop("resume", None)
    check_kind_only(kind, args)
    if args.get("binarize") == "none":
        args["binarize"] = None
    from . import api
    from .options import TrainOptions

    api.train(kind, TrainOptions(**args), resume=resume)
    return 0


def _launch(ranks: int, argv: list[str]) -> int:
    """--ranks N: run this same command under mlx.launch, N processes on this machine."""
    import subprocess

    from . import distributed

    if ranks < 1:
        raise UsageError(f"--ranks must be >= 1, got {ranks}")
    if distributed.launched():
        raise UsageError("--ranks starts mlx.launch itself; inside an mlx.launch group leave it out")
    rest, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--ranks":
            skip = True
        elif not arg.startswith("--ranks="):
            rest.append(arg)
    command = distributed.launch_command(ranks, ["train", *rest])
    print("launching: " + " ".join(command), file=sys.stderr, flush=True)
    return subprocess.call(command)


def sample_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="bin/sample", description="Draw samples from a trained run into a PNG grid.")
    p.add_argument("run_dir", help="a run directory written by bin/train")
    p.add_argument("--n", type=int, default=None, help="number of samples (default 64; a conditional "
                   "run without --labels: 8 per class, one row each)")
    p.add_argument("--seed", type=int, default=0, help="same seed, same images (default 0)")
    p.add_argument("--out", default=None, help="PNG path (default RUN_DIR/samples-seed<seed>.png)")
    p.add_argument("--npy", default=None, help="also save the uint8 (n, 28, 28) array here")
    p.add_argument("--sigma", choices=SIGMAS, default=None,
                   help="ddpm: reverse-step noise (default: the run's)")
    p.add_argument("--sampler", choices=SAMPLERS, default=None,
                   help="ddpm runs: 'ddim' samples deterministically in --steps steps (default ddpm)")
    p.add_argument("--steps", type=int, default=None, help="ddim: number of sampling steps (default: all T)")
    p.add_argument("--eta", type=float, default=None, help="ddim: noise scale, 0 deterministic (default 0)")
    p.add_argument("--labels", default=None, help="conditional runs: the class of each sample, comma-"
                   "separated (one per sample, or one for all), e.g. --labels 7 --n 16")
    p.add_argument("--guidance", type=float, default=None,
                   help="conditional ddpm: classifier-free guidance weight (default: the run's)")
    args = p.parse_args(argv)
    from pathlib import Path

    import numpy as np

    from . import api
    from .kinds import NUM_CLASSES

    run = api.load(args.run_dir)
    labels = _parse_labels(args.labels)
    images = api.sample(run, n=args.n, seed=args.seed, sigma=args.sigma,
                        sampler=args.sampler, steps=args.steps, eta=args.eta,
                        labels=labels, guidance=args.guidance)
    out = Path(args.out or Path(args.run_dir) / f"samples-seed{args.seed}.png")
    # A conditional run's default labels are every class in turn: one row per class.
    per_class = len(images) // NUM_CLASSES if run.conditional and labels is None and len(images) % NUM_CLASSES == 0 else None
    api.save_grid(images, out, nrow=per_class)
    if args.npy:
        np.save(args.npy, images)
    print(out)
    return 0


def _parse_labels(text: str | None):
    if text is None:
        return None
    try:
        return [int(item) for item in text.split(",")]
    except ValueError:
        raise UsageError(f"--labels {text!r}: expected comma-separated class numbers, e.g. 3,5,7") from None


def eval_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="bin/eval",
        description="Held-out likelihoods and sample quality of a trained run; writes RUN_DIR/eval.json.",
    )
    p.add_argument("run_dir", help="a run directory written by bin/train (ae, vae or ddpm)")
    p.add_argument("--n-samples", type=int, default=10_000, help="generated images for the sample metrics (default 10000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the samples and the IWAE draws (default 0)")
    p.add_argument("--iwae-k", type=int, default=1000, help="vae: importance samples per image (default 1000)")
    p.add_argument("--iwae-images", type=int, default=1000,
                   help="vae: test images the IWAE bound averages over (default 1000; k decoder passes each)")
    p.add_argument("--heldout-images", type=int, default=None,
                   help="use only the first N test images (default all): a quick look")
    p.add_argument("--knn-k", type=int, default=3, help="k of the k-NN precision and recall (default 3)")
    p.add_argument("--classifier", metavar="RUN_DIR", default=None,
                   help="classifier run for the sample metrics (default: the data set's shipped one)")
    p.add_argument("--data-dir", default=None, help="folder holding the data set's IDX files")
    p.add_argument("--sampler", choices=SAMPLERS, default=None, help="ddpm: sampler (default ddpm)")
    p.add_argument("--steps", type=int, default=None, help="ddim: number of sampling steps")
    p.add_argument("--eta", type=float, default=None, help="ddim: noise scale (default 0)")
    p.add_argument("--sigma", choices=SIGMAS, default=None, help="ddpm: reverse-step noise (default: the run's)")
    p.add_argument("--guidance", type=float, default=None,
                   help="conditional ddpm: classifier-free guidance weight (default: the run's)")
    p.add_argument("--json", action="store_true", help="print eval.json instead of the table")
    args = p.parse_args(argv)
    import json

    from . import evaluation

    result = evaluation.evaluate(
        args.run_dir, args.n_samples, seed=args.seed, iwae_k=args.iwae_k, iwae_images=args.iwae_images,
        heldout_images=args.heldout_images, knn_k=args.knn_k, classifier=args.classifier, data_dir=args.data_dir,
        sampler=args.sampler, steps=args.steps, eta=args.eta, sigma=args.sigma, guidance=args.guidance,
    )
    print(json.dumps(result, indent=2) if args.json else evaluation.format_result(result))
    return 0


# bin/train flags a sweep does not take: it names and places its runs itself.
NOT_FOR_SWEEPS = ("help", "kind", "resume", "out", "name", "ranks")


def _sweep_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bin/sweep",
        description="Train a model at every combination of settings, one run directory each under "
        "OUT/NAME/, then write report.html and report.md there. A flag with comma-separated values "
        "is swept; a flag with one value is fixed for every run. Run the same command again to "
        "resume: finished runs are skipped, interrupted ones continue from their checkpoint.",
        epilog="examples (the guide's experiments):\n"
        "  bin/sweep ae --latent-dim 16,32,64,128\n"
        "  bin/sweep ae --loss mse,bce\n"
        "  bin/sweep vae --warmup-steps 0,200,600 --beta-max 0.5,1,4\n"
        "  bin/sweep ddpm --T 4,6,8 --schedule linear,cosine",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS,
    )
    p.add_argument("kind", choices=("ae", "vae", "ddpm"), help="model family to sweep")
    s = p.add_argument_group("the sweep")
    s.add_argument("--name", help="sweep directory name (default: the model and swept flags, e.g. ae-latent_dim)")
    s.add_argument("--out", default="outputs/sweeps", help="parent folder of sweeps (default outputs/sweeps)")
    s.add_argument("--eval-samples", type=int, default=2000, help="generated images per run for the report's "
                   "sample metrics (Frechet distance, confidence, ...); 0 skips them (default 2000)")
    s.add_argument("--no-report", dest="report", action="store_false", default=True,
                   help="train only; bin/report OUT/NAME writes the report later")
    g = p.add_argument_group("settings (bin/train's flags; V1,V2,... sweeps, one value fixes)")
    for action in _train_parser()._actions:
        if action.dest in NOT_FOR_SWEEPS:
            continue
        if action.nargs == 0:  # a switch such as --no-progress
            g.add_argument(*action.option_strings, dest=action.dest, action="store_const",
                           const=action.const, help=action.help)
        else:
            g.add_argument(*action.option_strings, dest=action.dest, metavar="V[,V...]", help=action.help)
    return p


def sweep_main(argv: list[str]) -> int:
    from .sweeps import parse_values, sweep

    args = vars(_sweep_parser().parse_args(argv))
    kind, name, out = args.pop("kind"), args.pop("name", None), args.pop("out")
    eval_samples, report = args.pop("eval_samples"), args.pop("report")
    params, common = {}, {}
    for dest, text in args.items():
        if isinstance(text, bool):  # a switch
            common[dest] = text
            continue
        values = parse_values(dest, text, sweeping="," in text)
        if len(values) > 1:
            params[dest] = values
        else:
            common[dest] = values[0]
    sweep(kind, params, name=name, out=out, eval_samples=eval_samples, report=report, **common)
    return 0


def report_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="bin/report",
        description="Write report.html and report.md: a table of settings vs held-out metrics vs training "
        "time, sample and reconstruction grids, loss curves, latent maps, interpolations, denoising strips.",
        epilog="examples:\n"
        "  bin/report outputs/vae-20261124-101500           # one run: written into the run\n"
        "  bin/report outputs/sweeps/ae-latent_dim          # a sweep: written into the sweep\n"
        "  bin/report outputs/ae-... outputs/vae-... --out outputs/reports/ae-vs-vae",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="+", metavar="RUN_OR_SWEEP_DIR", help="a run, a sweep, or several runs to compare")
    p.add_argument("--out", default=None, help="where a report on several runs goes (required for several)")
    p.add_argument("--title", default=None, help="the report's title (several runs)")
    p.add_argument("--tsne", action="store_true", help="latent maps by t-SNE instead of PCA (needs scikit-learn)")
    args = p.parse_args(argv)
    from .reports import report

    report(args.paths, out=args.out, title=args.title, latent_method="tsne" if args.tsne else "pca")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        if argv and argv[0] not in ("-h", "--help"):
            print(f"error: unknown command {argv[0]!r}; choose one of: {', '.join(COMMANDS)}", file=sys.stderr)
        print("usage: python -m mlx_generative {" + ",".join(COMMANDS) + "} ...", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    command, rest = argv[0], argv[1:]
    try:
        if command == "train":
            return train_main(rest)
        if command == "sample":
            return sample_main(rest)
        if command == "eval":
            return eval_main(rest)
        if command == "sweep":
            return sweep_main(rest)
        if command == "report":
            return report_main(rest)
        if command == "info":
            from .info import main as info_main

            return info_main(rest)
        from .download import fetch_data_main

        return fetch_data_main(rest)
    except MlxGenerativeError as e:
        from .trainer import NonFiniteLossError, TrainingInterrupted

        if isinstance(e, TrainingInterrupted):
            return 128 + e.signum  # 130 for SIGINT, 143 for SIGTERM, as shells expect
        print(f"error: {e}", file=sys.stderr)
        return 1 if isinstance(e, NonFiniteLossError) else 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
