"""The data sets we know, where their files live, and loading them.

A data set is four IDX files (train/test images and labels), or, for the
shipped `mnist-sample`, two. `find_dataset` looks for a directory holding them,
in this order; the first directory with every file wins:

1. the `MLX_GENERATIVE_DATA` environment variable: a directory of `<name>/`
   subdirectories, or a folder holding the files directly;
2. the repository's `data/<name>/`, then a shared `../shared/datasets/<name>/`
   beside the checkout;
3. the user cache, `$XDG_CACHE_HOME/mlx-generative/<name>/` (default
   `~/.cache/mlx-generative/<name>/`), where `bin/fetch-data` downloads to;
4. system directories, such as `/usr/share/datasets/fashion-mnist/` from
   Debian's `dataset-fashion-mnist` package.

A `data_dir` argument (`--data-dir`) means "this folder": `data_dir/<name>/` or
`data_dir` itself is the only place looked, and a missing, damaged or foreign
file there is an error naming it, never a reason to use another copy. A user
who points at a folder and gets results from another data set has been given
wrong results.

Each file may be gzip-compressed (`train-images-idx3-ubyte.gz`) or not
(`train-images-idx3-ubyte`). Because a folder of MNIST look-alikes does not say
which look-alike it holds, a directory only counts if its label files have this
data set's checksums (hashing them is cheap); loading then checks the images
too. `mnist` without a full copy falls back to `mnist-sample`, with a note on
stderr once per process (inside `data_dir`, only to a sample in that folder).

`idx` is any folder of your own IDX files, given with `data_dir`; see
`idx_folder.py`.
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError, DatasetNotFoundError, UsageError
from . import idx_folder
from .idx import check_idx_pair, decode_idx, read_idx, read_idx_bytes

ENV_VAR = "MLX_GENERATIVE_DATA"
# The repository's data/ folder, beside the package directory.
REPO_DATA_DIR = Path(__file__).resolve().parents[2] / "data"
# A team's shared read-only datasets folder beside the checkout (`../shared/datasets/<name>/`),
# searched after the repository's own data/. It may hold just a test split (evaluation only).
SHARED_DATA_DIR = REPO_DATA_DIR.parent.parent / "shared" / "datasets"
SPLITS = ("train", "test")


@dataclass(frozen=True)
class DataFile:
    """One file of a data set, by its standard (gzip) name."""

    name: str  # e.g. "train-images-idx3-ubyte.gz"; the name without ".gz" is accepted too
    sha256: str  # of the decompressed payload, so recompressed copies still verify

    @property
    def names(self) -> tuple[str, str]:
        """The compressed and the uncompressed file name, in the order we look."""
        return self.name, self.name.removesuffix(".gz")


@dataclass(frozen=True)
class DatasetSpec:
    """What a data set is made of and where to get it."""

    name: str
    title: str  # for messages, e.g. "Fashion-MNIST"
    train_images: DataFile
    train_labels: DataFile
    test_images: DataFile | None  # None: the test split is the last `held_out` training items
    test_labels: DataFile | None
    mirrors: tuple[str, ...]  # base URLs, tried in order by download()
    system_dirs: tuple[Path, ...]
    how_to_get: str  # one line, ends every "not found" message
    held_out: int = 0

    @property
    def files(self) -> tuple[DataFile, ...]:
        """Every file the data set needs."""
        return tuple(
            f
            for f in (self.train_images, self.train_labels, self.test_images, self.test_labels)
            if f is not None
        )

    @property
    def label_files(self) -> tuple[DataFile, ...]:
        """The label files: small, so hashing them cheaply tells look-alikes apart."""
        return tuple(f for f in (self.train_labels, self.test_labels) if f is not None)

    def split_files(self, split: str) -> tuple[DataFile, DataFile]:
        """(images, labels) files holding `split`."""
        if split == "test" and self.test_images is not None and self.test_labels is not None:
            return self.test_images, self.test_labels
        return self.train_images, self.train_labels


@dataclass(frozen=True)
class Dataset:
    """One split of a data set, loaded."""

    name: str
    split: str
    images: np.ndarray  # uint8 (N, 28, 28), read-only
    labels: np.ndarray | None  # uint8 (N,), read-only; None for an `idx` folder without labels
    source: Path  # directory read
    note: str  # e.g. "held-out last 1,000 digits of the shipped sample"


def _standard_files(
    train_images: str, train_labels: str, test_images: str, test_labels: str
) -> dict[str, DataFile]:
    return {
        "train_images": DataFile("train-images-idx3-ubyte.gz", train_images),
        "train_labels": DataFile("train-labels-idx1-ubyte.gz", train_labels),
        "test_images": DataFile("t10k-images-idx3-ubyte.gz", test_images),
        "test_labels": DataFile("t10k-labels-idx1-ubyte.gz", test_labels),
    }


# SHA-256 of the decompressed payloads. Sources (see data/README.md):
# - MNIST test: /work/shared/datasets/mnist/README.md, and recomputed from that copy.
# - MNIST train: published, paired with the test hashes above and the file sizes
#   47,040,016 / 60,008 bytes, by many independent projects that verify the
#   uncompressed files (found via code search); not recomputed here (no copy).
# - Fashion-MNIST: computed from Debian's dataset-fashion-mnist copy; they match
#   the uncompressed hashes other projects publish.
# - mnist-sample: computed by data/build_mnist_sample.py.
# KMNIST is left out: we found only hashes of its .gz files, not of the payloads.
DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist",
        title="MNIST",
        **_standard_files(
            train_images="ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            train_labels="65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            test_images="0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            test_labels="ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        ),
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        system_dirs=(Path("/usr/share/datasets/mnist"),),
        how_to_get="get it with: bin/fetch-data mnist",
    ),
    "fashion-mnist": DatasetSpec(
        name="fashion-mnist",
        title="Fashion-MNIST",
        **_standard_files(
            train_images="c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            train_labels="bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            test_images="5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            test_labels="0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        ),
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        system_dirs=(Path("/usr/share/datasets/fashion-mnist"),),
        how_to_get=(
            "get it with: bin/fetch-data fashion-mnist, "
            "or on Debian/Ubuntu: apt-get install dataset-fashion-mnist"
        ),
    ),
    "mnist-sample": DatasetSpec(
        name="mnist-sample",
        title="MNIST sample",
        train_images=DataFile(
            "train-images-idx3-ubyte.gz",
            "bd62813c2a806853385b586e61f13716f0e9fb382e72e60706d763c6658dcb82",
        ),
        train_labels=DataFile(
            "train-labels-idx1-ubyte.gz",
            "5beb7632daad90783ad5179eb1ed55c84d5de42a0e6a98e2614dc9c8851321c0",
        ),
        test_images=None,
        test_labels=None,
        mirrors=(),
        system_dirs=(),
        how_to_get="it ships with the repository; rebuild it with: python data/build_mnist_sample.py",
        held_out=1_000,
    ),
}

# Said once per process, however often `mnist` falls back to the sample.
_fallback_noted = False


def dataset_names() -> list[str]:
    """Names accepted by `load_dataset` and `find_dataset` (`download`: the registered ones)."""
    return [*DATASETS, idx_folder.NAME]


def get_spec(name: str) -> DatasetSpec:
    """The registry entry for `name`; `UsageError` if there is none."""
    try:
        return DATASETS[name]
    except KeyError:
        raise UsageError(
            f"unknown data set {name!r}; known: {', '.join(DATASETS)}, "
            f"or {idx_folder.NAME} for a folder of your own IDX files (with --data-dir)"
        ) from None


def user_cache_dir(name: str) -> Path:
    """Where downloads of `name` go: `$XDG_CACHE_HOME/mlx-generative/<name>/`."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "mlx-generative" / name


def find_dataset(name: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The directory holding data set `name`, searched in the order of the module docstring.

    `mnist` with no full copy anywhere resolves to the `mnist-sample` directory
    (saying so once on stderr). With `data_dir`, only that folder is looked in, and
    every file of the data set found there is checked (a damaged one is a `DataError`).

    Raises:
        UsageError: `name` is not a known data set.
        DatasetNotFoundError: no directory holds it; the message lists each
            place looked and how to get the data.
    """
    if name == idx_folder.NAME:
        return _load_own("train", data_dir).source
    return _resolve(name, data_dir)[1]


def load_dataset(
    name: str, split: str = "train", data_dir: str | os.PathLike[str] | None = None
) -> Dataset:
    """Load one split of a data set as uint8 arrays.

    The files' decompressed payloads are checked against the registry's
    SHA-256. For `mnist-sample` (and `mnist` falling back to it), `train` is
    the first 9,000 digits and `test` the held-out last 1,000, both views of
    the same arrays.

    Raises:
        UsageError: unknown name or split.
        DatasetNotFoundError: no copy found (see `find_dataset`).
        DataError: a file is malformed or fails its checksum.
    """
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    if name == idx_folder.NAME:
        return _load_own(split, data_dir)
    spec, directory = _resolve(name, data_dir)
    images_file, labels_file = spec.split_files(split)
    images, labels = _load_pair(directory, images_file, labels_file)
    note = f"{spec.title} {split} split"
    if spec.held_out:
        total = len(images)
        keep = slice(0, total - spec.held_out) if split == "train" else slice(total - spec.held_out, total)
        images, labels = images[keep], labels[keep]
        note = (
            f"first {len(images):,} digits of the shipped sample"
            if split == "train"
            else f"held-out last {len(images):,} digits of the shipped sample"
        )
    return Dataset(spec.name, split, images, labels, directory, note)


def evaluation_dataset(name: str) -> str:
    """The data set whose test split judges a run of ``name``: the sample's digits are MNIST
    digits, judged on MNIST's test split (and by the MNIST classifier)."""
    return "mnist" if name in ("mnist", "mnist-sample") else name


def run_data_dir(dataset: str, trained_data_dir=None, data_dir=None):
    """The folder a run's data is read from later (evaluation, figures): ``data_dir`` if given;
    for the user's own IDX folder the one it trained on, the data set's identity; else None
    (the usual search)."""
    if dataset == idx_folder.NAME and data_dir is None:
        return trained_data_dir
    return data_dir


def heldout_for_run(dataset: str, trained_data_dir=None, data_dir=None) -> Dataset:
    """The held-out split that judges a run trained on `dataset` (`evaluation_dataset`'s test
    split), read from `run_data_dir`."""
    return load_heldout(evaluation_dataset(dataset), run_data_dir(dataset, trained_data_dir, data_dir))


def load_heldout(name: str, data_dir: str | os.PathLike[str] | None = None) -> Dataset:
    """The split to evaluate on: the data set's own test split wherever one is found,
    even with no training split beside it (the real MNIST test set while training
    used the sample); else what `load_dataset(name, "test")` gives.
    """
    if name == idx_folder.NAME:
        return _load_own("test", data_dir)
    spec = get_spec(name)
    if spec.test_images is not None and spec.test_labels is not None:
        for directory in _candidate_dirs(spec, data_dir):
            files = (spec.test_images, spec.test_labels)
            # In a data_dir, the test files are the user's choice: checked on loading, never skipped.
            if all(_locate(directory, f) is not None for f in files) and (
                    data_dir is not None or _payload_matches(directory, spec.test_labels)):
                images, labels = _load_pair(directory, spec.test_images, spec.test_labels)
                return Dataset(spec.name, "test", images, labels, directory, f"{spec.title} test split")
    return load_dataset(name, "test", data_dir)


def _load_own(split: str, data_dir) -> Dataset:
    """A split of a folder of the user's own IDX files (idx_folder.py)."""
    if data_dir is None:
        raise UsageError(f"--dataset {idx_folder.NAME} needs --data-dir: the folder holding your "
                         "train-images-idx3-ubyte (and, optionally, labels and t10k files)")
    directory = Path(data_dir).resolve()
    part = idx_folder.load_split(directory, split)
    return Dataset(idx_folder.NAME, split, part.images, part.labels, directory, part.note)


def _resolve(name: str, data_dir: str | os.PathLike[str] | None) -> tuple[DatasetSpec, Path]:
    spec = get_spec(name)
    if data_dir is not None:
        return _resolve_explicit(spec, Path(data_dir))
    try:
        return spec, _search(spec, data_dir)
    except DatasetNotFoundError:
        if name != "mnist":
            raise
    sample = DATASETS["mnist-sample"]
    directory = _search(sample, data_dir)
    _note_fallback(directory)
    return sample, directory


def _note_fallback(directory: Path) -> None:
    global _fallback_noted
    if not _fallback_noted:
        _fallback_noted = True
        print(
            f"mlx-generative: no full MNIST copy found; using the 10,000-digit sample in "
            f"{directory}. Get the full set with: bin/fetch-data mnist",
            file=sys.stderr,
        )


def _resolve_explicit(spec: DatasetSpec, root: Path) -> tuple[DatasetSpec, Path]:
    """`data_dir` given: the data set in that folder, each file checked, or an error naming
    what is missing or damaged. `mnist` may fall back only to a sample in that folder."""
    if not root.is_dir():
        raise DatasetNotFoundError(f"{root}: no such folder (--data-dir names the folder holding "
                                   f"{spec.title}'s IDX files)")
    directory = next((d for d in (root / spec.name, root) if _present(spec, d)), root)
    present = _present(spec, directory)
    _check_structure(spec, present)
    missing = [f.name for f in spec.files if f not in present]
    sample = DATASETS["mnist-sample"]
    if missing and spec.name == "mnist" and _payload_matches(directory, sample.train_labels):
        _resolve_explicit(sample, directory)  # the sample's own files, checked the same way
        _note_fallback(directory)
        return sample, directory
    if missing:
        raise DatasetNotFoundError(
            f"{directory}: no complete {spec.title} copy there: missing {', '.join(missing)} (.gz or not). "
            f"--data-dir is the only place looked when given; for your own IDX files use --dataset {idx_folder.NAME}"
        )
    for file in spec.label_files:  # cheap, and tells a look-alike from this data set
        _check_checksum(present[file], file, read_idx_bytes(present[file]), spec)
    return spec, directory


# Files already checked by _check_structure, by (path, size, mtime): a run loads two splits,
# and reading the full MNIST twice more would cost a second for nothing.
_structure_checked: set[tuple] = set()


def _check_structure(spec: DatasetSpec, present: dict[DataFile, Path]) -> None:
    """Every file present decodes as IDX, and each split's images and labels agree in count:
    a damaged file is named before anything is said to be missing."""
    stamp = tuple(sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in present.values()))
    if stamp in _structure_checked:
        return
    arrays = {file: read_idx(path) for file, path in present.items()}
    for images, labels in ((spec.train_images, spec.train_labels), (spec.test_images, spec.test_labels)):
        if images in arrays and labels in arrays:
            check_idx_pair(arrays[images], arrays[labels], present[images], present[labels])
    _structure_checked.add(stamp)


def _present(spec: DatasetSpec, directory: Path) -> dict[DataFile, Path]:
    """The files of `spec` that `directory` holds, by where they are."""
    found = {file: _locate(directory, file) for file in spec.files}
    return {file: path for file, path in found.items() if path is not None}


def _check_checksum(path: Path, file: DataFile, payload: bytes, spec: DatasetSpec | None = None) -> None:
    digest = hashlib.sha256(payload).hexdigest()
    if digest != file.sha256:
        whose = f"{spec.title}'s " if spec else ""
        raise DataError(
            f"{path}: checksum mismatch: SHA-256 of the decompressed data is {digest}, "
            f"expected {whose}{file.sha256}; the file is corrupt or from another data set "
            f"(delete it and fetch it again; your own IDX files train with --dataset {idx_folder.NAME})"
        )


def _candidate_dirs(spec: DatasetSpec, data_dir: str | os.PathLike[str] | None) -> list[Path]:
    """Directories to look in, in priority order (see the module docstring)."""
    if data_dir is not None:  # "this folder", and only this folder
        return [Path(data_dir) / spec.name, Path(data_dir)]
    candidates: list[Path] = []
    root = os.environ.get(ENV_VAR) or None
    if root is not None:
        candidates += [Path(root) / spec.name, Path(root)]
    candidates += [
        REPO_DATA_DIR / spec.name, SHARED_DATA_DIR / spec.name, user_cache_dir(spec.name), *spec.system_dirs
    ]
    return candidates


def _search(spec: DatasetSpec, data_dir: str | os.PathLike[str] | None) -> Path:
    looked: list[str] = []
    for directory in _candidate_dirs(spec, data_dir):
        missing = [f.name for f in spec.files if _locate(directory, f) is None]
        if missing:
            looked.append(str(directory))
            continue
        wrong = [f.name for f in spec.label_files if not _payload_matches(directory, f)]
        if not wrong:
            return directory
        looked.append(f"{directory} (has the files, but {', '.join(wrong)} is not {spec.title}'s)")
    needed = ", ".join(f.name for f in spec.files)
    raise DatasetNotFoundError(
        f"no copy of {spec.name} found (need {needed}, .gz or not); "
        f"looked in: {'; '.join(looked)}. {spec.how_to_get[0].upper()}{spec.how_to_get[1:]}"
    )


def _locate(directory: Path, file: DataFile) -> Path | None:
    for candidate in file.names:
        path = directory / candidate
        if path.is_file():
            return path
    return None


def _payload_matches(directory: Path, file: DataFile) -> bool:
    path = _locate(directory, file)
    if path is None:
        return False
    try:
        return hashlib.sha256(read_idx_bytes(path)).hexdigest() == file.sha256
    except DataError:
        return False


def _load_pair(directory: Path, images_file: DataFile, labels_file: DataFile) -> tuple[np.ndarray, np.ndarray]:
    """One split's images and labels, each checksummed, and checked to belong together."""
    images = _load_verified(directory, images_file)
    labels = _load_verified(directory, labels_file)
    # The checksums pin the contents; this guards the registry itself.
    check_idx_pair(images, labels, directory / images_file.name, directory / labels_file.name)
    return images, labels


def _load_verified(directory: Path, file: DataFile) -> np.ndarray:
    path = _locate(directory, file)
    if path is None:  # removed between finding and loading
        raise DataError(f"{directory / file.name}: file disappeared")
    payload = read_idx_bytes(path)
    array = decode_idx(payload, path)  # structural errors ("truncated by N bytes") say more than a hash
    _check_checksum(path, file, payload)
    return array
