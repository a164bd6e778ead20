"""Every bad input we know of, in one table: exit status 2, one line naming the argument,
file or folder and what was expected, no traceback, and nothing left on disk. The training
rows go through the Python API too, which must refuse them with the same words."""

from __future__ import annotations

import gzip
import shlex
import shutil
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest

import mlx_generative as mg
from mlx_generative.cli.flags import none_to_python
from mlx_generative.cli.train import setup_arg_parser
from mlx_generative.data.idx import write_idx
from mlx_generative.errors import MlxGenerativeError

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "mnist-sample"
IMAGES, LABELS = "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"


def _sample_copy(folder: Path) -> None:
    """The shipped sample's two files: a folder `--dataset mnist` accepts as it is."""
    folder.mkdir(parents=True)
    for name in (IMAGES, LABELS):
        shutil.copyfile(SAMPLE / name, folder / name)


def _rewrite(path: Path, change, raw: bool = False) -> None:
    """Replace a gzip IDX file by ``change(its payload)``, gzipped again (or raw, without .gz)."""
    payload = change(gzip.decompress(path.read_bytes()))
    path.unlink()
    if raw:
        path.with_suffix("").write_bytes(payload)
    else:
        path.write_bytes(gzip.compress(payload))


def _own(folder: Path, images=(6, 28, 28), labels: bool = True, test: bool = True, test_labels=None, **extra) -> None:
    """A folder of one's own IDX files (--dataset idx)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    write_idx(folder / "train-images-idx3-ubyte.gz", rng.integers(0, 256, images, dtype=np.uint8))
    if labels:
        write_idx(folder / "train-labels-idx1-ubyte.gz", np.arange(images[0], dtype=np.uint8) % 10)
    if test:
        write_idx(folder / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (4, 28, 28), dtype=np.uint8))
    if test and (labels if test_labels is None else test_labels):
        write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.arange(4, dtype=np.uint8))
    for name, array in extra.items():
        write_idx(folder / name.replace("_", "-"), array)


def _damaged(change_images=None, change_labels=None, raw: bool = False):
    def build(folder: Path) -> None:
        _sample_copy(folder)
        if change_images:
            _rewrite(folder / IMAGES, change_images, raw)
        if change_labels:
            _rewrite(folder / LABELS, change_labels, raw)
    return build


def _corrupt_gzip(folder: Path) -> None:
    _sample_copy(folder)
    data = bytearray((folder / IMAGES).read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)  # zeros in the middle of the deflate stream
    (folder / IMAGES).write_bytes(bytes(data))


# "DATA:<name>" in a command stands for a folder built by DATA_FOLDERS[name]; "{data}" in
# its message for that folder's path.
DATA_FOLDERS = {
    "truncated-images": _damaged(change_images=lambda b: b[:-100], raw=True),
    "bad-magic": _damaged(change_labels=lambda b: b"\x08\x03" + b[2:]),
    "counts-disagree": _damaged(change_labels=lambda b: b[:4] + (9_999).to_bytes(4, "big") + b[8:-1]),
    "corrupt-gzip": _corrupt_gzip,
    "absent": lambda folder: None,
    "empty": lambda folder: folder.mkdir(parents=True),
    "foreign-labels": _damaged(change_labels=lambda b: b[:8] + bytes(len(b) - 8)),
    "own": _own,
    "own-32x32": lambda folder: _own(folder, images=(6, 32, 32)),
    "own-colour": lambda folder: _own(folder, images=(6, 28, 28, 3)),
    "own-unlabelled": lambda folder: _own(folder, labels=False, test=False),
    "own-two-sets": lambda folder: _own(folder, emnist_letters_train_images_idx3_ubyte=np.zeros((2, 28, 28), np.uint8)),
    "own-test-unlabelled": lambda folder: _own(folder, test_labels=False),
    "a-file": lambda folder: folder.write_text("a file, not a folder"),
    "own-no-images": lambda folder: _own(folder, test=False) or (folder / "train-images-idx3-ubyte.gz").unlink(),
}

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
    Bad("train classifier --channels 16", "--channels applies to ae, vae, ddpm and flow only, not classifier"),
    Bad("train ddpm --channels 40", "--channels must be a multiple of 16 for a UNet"),
    Bad("train ae --conditional", "--conditional applies to vae, ddpm and flow only, not ae"),
    Bad("train vae --attention", "--attention applies to ddpm and flow only, not vae"),
    Bad("train vae --sampler ddim", "--sampler applies to ddpm and flow only, not vae"),
    Bad("train ddpm --sample-steps 4", "--sample-steps applies to --sampler ddim"),
    Bad("train ddpm --sample-eta 0.5", "--sample-eta applies to --sampler ddim"),
    Bad("train ddpm --sample-spacing edm", "--sample-spacing applies to --sampler ddim or dpmpp"),
    Bad("train ddpm --guidance 2", "--guidance applies to conditional models: add --conditional"),
    Bad("train ddpm --label-dropout 0.2", "--label-dropout applies to conditional models: add --conditional"),
    # bin/train: data, resume, launch
    Bad("train ae --batch-size 17 --limit-train 16",
        "batch size must be between 1 and the number of training images (16)"),
    Bad("train ae --dataset cifar", "unknown data set 'cifar'"),
    Bad("train vae --resume /nonexistent/run", "/nonexistent/run: no such run directory"),
    Bad("train vae --resume RUN:ae", "that run trains a ae, not a vae"),
    Bad("train ae --ranks 0", "--ranks must be >= 1, got 0"),
    # --data-dir means "this folder": damage there is an error naming the file, never a fall-back
    Bad("train ae --data-dir DATA:truncated-images", "{data}/train-images-idx3-ubyte: truncated by 100 bytes"),
    Bad("train vae --data-dir DATA:bad-magic", "{data}/train-labels-idx1-ubyte.gz: bad magic number 0x0803"),
    Bad("train ae --data-dir DATA:counts-disagree",
        "{data}/train-images-idx3-ubyte.gz and {data}/train-labels-idx1-ubyte.gz disagree: 10,000 images but 9,999"),
    Bad("train ddpm --data-dir DATA:corrupt-gzip", "{data}/train-images-idx3-ubyte.gz: corrupt gzip data"),
    Bad("train ae --data-dir DATA:absent", "{data}: no such folder"),
    Bad("train ae --data-dir DATA:empty", "{data}: no complete MNIST copy there: missing train-images-idx3-ubyte.gz"),
    Bad("train ae --data-dir DATA:foreign-labels", "{data}: no complete MNIST copy there: missing t10k-images"),
    Bad("train ae --dataset fashion-mnist --data-dir DATA:counts-disagree", "disagree: 10,000 images but 9,999"),
    Bad("sweep ae --latent-dim 4,8 --data-dir DATA:truncated-images", "{data}/train-images-idx3-ubyte: truncated by"),
    Bad("eval RUN:ae --data-dir DATA:empty", "{data}: no complete MNIST copy there: missing"),
    # --dataset idx: one's own IDX files, checked by structure
    Bad("train ae --dataset idx", "--dataset idx needs --data-dir"),
    Bad("train ae --dataset idx --data-dir DATA:own-32x32",
        "{data}/train-images-idx3-ubyte.gz: images are 32x32; the models take 28x28 grayscale images"),
    Bad("train ae --dataset idx --data-dir DATA:own-colour", "{data}/train-images-idx3-ubyte.gz: colour images"),
    Bad("train vae --dataset idx --data-dir DATA:own-two-sets",
        "{data}: 2 files could be the train images (emnist-letters-train-images-idx3-ubyte, train-images-idx3-ubyte.gz)"),
    Bad("train vae --dataset idx --data-dir DATA:own-test-unlabelled",
        "{data}: train-labels-idx1-ubyte.gz labels the train images but t10k-images-idx3-ubyte.gz has no labels file"),
    Bad("train ae --dataset idx --data-dir DATA:own-no-images", "{data}: no training images"),
    Bad("train ae --dataset idx --data-dir DATA:absent", "{data}: no such folder"),
    Bad("train vae --conditional --dataset idx --data-dir DATA:own-unlabelled",
        "--conditional trains on labels, and the idx training images in {data} have none"),
    Bad("train classifier --dataset idx --data-dir DATA:own-unlabelled", "classifier trains on labels"),
    Bad("train ae --dataset idx --data-dir DATA:own --batch-size 6 --limit-train 5",
        "batch size must be between 1 and the number of training images (5)"),
    # bin/sample
    Bad("sample /nonexistent/run", "/nonexistent/run: no such run directory"),
    Bad("sample RUN:ddpm --labels seven", "--labels 'seven': expected comma-separated class numbers"),
    Bad("sample RUN:ddpm --steps 3", "steps applies to sampler='ddim' or 'dpmpp' only"),
    Bad("sample RUN:ddpm --sampler dpmpp --eta 1", "eta applies to sampler='ddim' only"),
    Bad("sample RUN:ddpm --sampler ddim --steps 0", "steps must be >= 1, got 0"),
    Bad("sample RUN:ddpm --spacing edm", "spacing applies to sampler='ddim' or 'dpmpp' only"),
    Bad("sample RUN:ddpm --sampler dpmpp --spacing karras", "--spacing: invalid choice: 'karras'"),
    Bad("sample RUN:ddpm --guidance 1", "guidance applies to ddpm runs trained with --conditional"),
    Bad("sample RUN:vae --sigma beta", "sigma applies to ddpm runs only, not vae"),
    Bad("sample RUN:vae --labels 3", "labels apply to runs trained with --conditional"),
    Bad("sample RUN:ae --n 0", "n must be >= 1, got 0"),
    Bad("sample RUN:classifier", "a classifier does not generate images"),
    # bin/eval
    Bad("eval RUN:ae --n-samples 1", "n_samples must be >= 4, got 1"),
    Bad("eval RUN:vae --iwae-k 0", "iwae_k must be >= 1, got 0"),
    Bad("eval RUN:vae --classifier RUN:ae", "not a classifier run (its kind is ae)"),
    Bad("eval RUN:ddpm --eta 0.5", "eta applies to sampler='ddim' only"),
    Bad("eval RUN:classifier", "evaluate needs an ae, vae, ddpm or flow run, not a classifier"),
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
    # bin/fetch-data and bin/info
    Bad("fetch-data cifar", "argument NAME: invalid choice: 'cifar'"),
    Bad("fetch-data mnist-sample", "argument NAME: invalid choice: 'mnist-sample'"),
    Bad("fetch-data mnist --dest DATA:a-file/below", "cannot create {data}/below"),
    Bad("info --gpu", "unrecognized arguments: --gpu"),
    # the dispatcher
    Bad("frobnicate", "unknown command 'frobnicate'"),
]


def _argv(command: str, tiny_runs, tmp_path: Path) -> tuple[list[str], Path | None]:
    """The command's words with RUN:/DATA: resolved, and the data folder (if any)."""
    argv, data = [], None
    for word in shlex.split(command):
        if word.startswith("RUN:"):
            word = str(tiny_runs[word.split(":", 1)[1]].run_dir)
        elif word.startswith("DATA:"):
            name, _, below = word.split(":", 1)[1].partition("/")
            data = tmp_path / name
            DATA_FOLDERS[name](data)
            word = str(data / below) if below else str(data)
        argv.append(word)
    if argv[0] in ("train", "sweep") and len(argv) > 2:
        argv += ["--out", str(tmp_path / "out")]
    return argv, data


@pytest.mark.parametrize("case", BAD_ARGUMENTS, ids=lambda c: c.command)
def test_bad_arguments(case, tiny_runs, cli, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    argv, data = _argv(case.command, tiny_runs, tmp_path)
    message = case.message.format(data=data)
    status, err = cli(argv)
    assert status == 2, err
    assert message in err
    assert "Traceback" not in err
    said = [line for line in err.splitlines() if "error" in line]  # argparse prints its usage first
    assert len(said) == 1 and message in said[0]
    if data is not None:
        assert "using the 10,000-digit sample" not in err, "--data-dir: never a fall-back to other data"
    assert not any(out.iterdir()), "a rejected command leaves nothing behind"


TRAINING_ROWS = [c for c in BAD_ARGUMENTS if c.command.startswith("train ") and "invalid" not in c.message
                 and "--ranks" not in c.command and "--resume" not in c.command and c.command != "train ae --T 6"]


@pytest.mark.parametrize("case", TRAINING_ROWS, ids=lambda c: c.command)
def test_the_python_api_refuses_the_same_training_settings(case, tmp_path):
    words, data = _argv(case.command, None, tmp_path)
    args = vars(setup_arg_parser().parse_args(words[1:]))
    kind = args.pop("kind")
    with pytest.raises(MlxGenerativeError) as error:
        mg.train(kind, verbose=False, **none_to_python(args))
    assert case.message.format(data=data) in str(error.value)
    out = tmp_path / "out"
    assert not out.exists() or not any(out.iterdir())


# The same refusals from the Python API: the package's own exception, the same words.
API_CASES = [
    ("sample ddpm, steps without ddim", lambda runs: mg.sample(runs["ddpm"], steps=3),
     "steps applies to sampler='ddim' or 'dpmpp' only"),
    ("sample ddpm, ddim 0 steps", lambda runs: mg.sample(runs["ddpm"], sampler="ddim", steps=0),
     "steps must be >= 1, got 0"),
    ("sample vae with labels", lambda runs: mg.sample(runs["vae"], labels=[3]),
     "labels apply to runs trained with --conditional"),
    ("sample ae n=0", lambda runs: mg.sample(runs["ae"], n=0), "n must be >= 1, got 0"),
    ("evaluate ae n_samples=1", lambda runs: mg.evaluate(runs["ae"], n_samples=1, write=False),
     "n_samples must be >= 4, got 1"),
    ("evaluate classifier", lambda runs: mg.evaluate(runs["classifier"], write=False),
     "evaluate needs an ae, vae, ddpm or flow run, not a classifier"),
    ("load a missing run", lambda runs: mg.load("/nonexistent/run"), "/nonexistent/run: no such run directory"),
    ("own data without a folder", lambda runs: mg.load_dataset("idx"), "--dataset idx needs --data-dir"),
]


@pytest.mark.parametrize("case", API_CASES, ids=lambda c: c[0])
def test_the_python_api_refuses_the_same_inputs(case, tiny_runs):
    _, call, message = case
    with pytest.raises(MlxGenerativeError) as error:
        call(tiny_runs)
    assert message in str(error.value)
    messages = {c.message for c in BAD_ARGUMENTS}
    assert any(message in m for m in messages), "the CLI table has the same case"
