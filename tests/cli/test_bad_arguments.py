"""Every bad command-line argument we know of, in one table: exit status 2, one line naming
the argument and what was expected, no traceback, and nothing left on disk. The training
rows go through the Python API too, which must refuse them with the same words."""

from __future__ import annotations

import shlex
from collections import namedtuple

import pytest

import mlx_generative as mg
from mlx_generative.cli.flags import none_to_python
from mlx_generative.cli.train import setup_arg_parser
from mlx_generative.errors import MlxGenerativeError

Bad = namedtuple("Bad", "command message")
# "RUN" stands for a tiny trained run of the family after it; "OUT" for an empty folder.
BAD_ARGUMENTS = [
    # bin/train: argparse's own checks
    Bad("train gan", "invalid choice: 'gan'"),
    Bad("train ddpm --schedule quadratic", "invalid choice: 'quadratic'"),
    Bad("train ae --steps ten", "invalid int value: 'ten'"),
    Bad("train ddpm --sampler plms", "invalid choice: 'plms'"),
    # bin/train: each option's declared range
    Bad("train ae --steps -1", "--steps must be >= 0, got -1"),
    Bad("train ddpm --T 0", "--T must be >= 1, got 0"),
    Bad("train ae --latent-dim 0", "--latent-dim must be >= 1, got 0"),
    Bad("train ae --batch-size 0", "--batch-size must be >= 1, got 0"),
    Bad("train vae --warmup-steps -5", "--warmup-steps must be >= 0, got -5"),
    Bad("train vae --beta-max 0", "--beta-max must be > 0, got 0.0"),
    Bad("train vae --beta-max -1", "--beta-max must be > 0, got -1.0"),
    Bad("train ae --lr 0", "--lr must be > 0, got 0.0"),
    Bad("train ae --limit-train 0", "--limit-train must be >= 1, got 0"),
    Bad("train ae --keep-checkpoints 0", "--keep-checkpoints must be >= 1, got 0"),
    Bad("train ae --clip-grad-norm 0", "--clip-grad-norm must be > 0, got 0.0"),
    Bad("train ae --ema-decay 1", "--ema-decay must be in [0, 1), got 1.0"),
    Bad("train vae --channels 0", "--channels must be >= 1, got 0"),
    Bad("train ddpm --sampler ddim --sample-steps 0", "--sample-steps must be >= 1, got 0"),
    Bad("train ddpm --sampler ddim --sample-eta -1", "--sample-eta must be >= 0, got -1.0"),
    Bad("train ddpm --conditional --label-dropout 1", "--label-dropout must be in [0, 1), got 1.0"),
    Bad("train ddpm --conditional --guidance -2", "--guidance must be >= 0, got -2.0"),
    Bad("train ae --batch-size 8 --shards 9", "--shards must be between 1 and --batch-size (8), got 9"),
    # bin/train: an option of another family, or one that needs another
    Bad("train ae --T 4", "--T applies to ddpm only, not ae"),
    Bad("train ae --T 6", "--T applies to ddpm only, not ae"),  # even at its default value
    Bad("train ddpm --beta-max 2", "--beta-max applies to vae only, not ddpm"),
    Bad("train ddpm --channels 16", "--channels applies to ae and vae only, not ddpm"),
    Bad("train ae --conditional", "--conditional applies to vae and ddpm only, not ae"),
    Bad("train vae --attention", "--attention applies to ddpm only, not vae"),
    Bad("train vae --sampler ddim", "--sampler applies to ddpm only, not vae"),
    Bad("train ddpm --sample-steps 4", "--sample-steps applies to --sampler ddim"),
    Bad("train ddpm --sample-eta 0.5", "--sample-eta applies to --sampler ddim"),
    Bad("train ddpm --guidance 2", "--guidance applies to conditional models: add --conditional"),
    Bad("train ddpm --label-dropout 0.2", "--label-dropout applies to conditional models: add --conditional"),
    # bin/train: data, resume, launch
    Bad("train ae --batch-size 17 --limit-train 16",
        "batch size must be between 1 and the number of training images (16)"),
    Bad("train ae --dataset cifar", "unknown data set 'cifar'"),
    Bad("train vae --resume /nonexistent/run", "/nonexistent/run: no such run directory"),
    Bad("train vae --resume RUN:ae", "that run trains a ae, not a vae"),
    Bad("train ae --ranks 0", "--ranks must be >= 1, got 0"),
    # bin/sample
    Bad("sample /nonexistent/run", "/nonexistent/run: no such run directory"),
    Bad("sample RUN:ddpm --labels seven", "--labels 'seven': expected comma-separated class numbers"),
    Bad("sample RUN:ddpm --steps 3", "steps and eta apply to sampler='ddim' only"),
    Bad("sample RUN:ddpm --sampler ddim --steps 0", "steps must be >= 1, got 0"),
    Bad("sample RUN:ddpm --guidance 1", "guidance applies to ddpm runs trained with --conditional"),
    Bad("sample RUN:vae --sigma beta", "sigma applies to ddpm runs only, not vae"),
    Bad("sample RUN:vae --labels 3", "labels apply to runs trained with --conditional"),
    Bad("sample RUN:ae --n 0", "n must be >= 1, got 0"),
    Bad("sample RUN:classifier", "a classifier does not generate images"),
    # bin/eval
    Bad("eval RUN:ae --n-samples 1", "n_samples must be >= 4, got 1"),
    Bad("eval RUN:vae --iwae-k 0", "iwae_k must be >= 1, got 0"),
    Bad("eval RUN:vae --classifier RUN:ae", "not a classifier run (its kind is ae)"),
    Bad("eval RUN:ddpm --eta 0.5", "steps and eta apply to sampler='ddim' only"),
    Bad("eval RUN:classifier", "evaluate needs an ae, vae or ddpm run, not a classifier"),
    # bin/sweep and bin/report
    Bad("sweep ae --latent-dim 8,x", "--latent-dim '8,x': expected integers, got 'x'"),
    Bad("sweep ae --latent-dim 8,8", "--latent-dim '8,8': a value is repeated"),
    Bad("sweep ae --T 4,6", "--T applies to ddpm only, not ae"),
    Bad("sweep ddpm --schedule linear,square", "--schedule must be linear or cosine"),
    Bad("sweep ae --latent-dim 8,0", "--latent-dim must be >= 1, got 0"),
    Bad("sweep vae --steps 10", "give at least one setting to sweep"),
    Bad("sweep ae --data-dir a,b", "--data-dir cannot be swept"),
    Bad("report /no/such/run", "/no/such/run: no such directory"),
    Bad("report RUN:ae RUN:vae", "--out: a report on several runs needs a folder"),
    # the dispatcher
    Bad("frobnicate", "unknown command 'frobnicate'"),
]


def _argv(command: str, tiny_runs, out) -> list[str]:
    argv = []
    for word in shlex.split(command):
        argv.append(str(tiny_runs[word.split(":", 1)[1]].run_dir) if word.startswith("RUN:") else word)
    if argv[0] in ("train", "sweep") and len(argv) > 2:
        argv += ["--out", str(out)]
    return argv


@pytest.mark.parametrize("case", BAD_ARGUMENTS, ids=lambda c: c.command)
def test_bad_arguments(case, tiny_runs, cli, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    status, err = cli(_argv(case.command, tiny_runs, out))
    assert status == 2
    assert case.message in err
    assert "Traceback" not in err
    said = [line for line in err.splitlines() if "error" in line]  # argparse prints its usage first
    assert len(said) == 1 and case.message in said[0]
    assert not any(out.iterdir()), "a rejected command leaves nothing behind"


TRAINING_ROWS = [c for c in BAD_ARGUMENTS if c.command.startswith("train ") and "invalid" not in c.message
                 and "--ranks" not in c.command and "--resume" not in c.command and c.command != "train ae --T 6"]


@pytest.mark.parametrize("case", TRAINING_ROWS, ids=lambda c: c.command)
def test_the_python_api_refuses_the_same_training_settings(case, tmp_path):
    args = vars(setup_arg_parser().parse_args(shlex.split(case.command)[1:]))
    kind = args.pop("kind")
    with pytest.raises(MlxGenerativeError) as error:
        mg.train(kind, out=str(tmp_path), verbose=False, **none_to_python(args))
    assert case.message in str(error.value)
    assert not any(tmp_path.iterdir())
