"""Your own data: a folder of IDX files, checked by structure instead of checksum.

``--dataset idx --data-dir DIR`` trains on whatever MNIST-style data DIR holds: KMNIST,
EMNIST digits, your own digits. The files are named as MNIST's, with any prefix (EMNIST's
``emnist-digits-train-images-idx3-ubyte.gz``), gzip-compressed or not:

    *train-images-idx3-ubyte   required   uint8 (N, 28, 28) grayscale
    *train-labels-idx1-ubyte   optional   uint8 (N,): classes 0-9 for --conditional
    *t10k-images-idx3-ubyte    optional   the held-out split (or *test-images-idx3-ubyte)
    *t10k-labels-idx1-ubyte    optional   its labels (or *test-labels-idx1-ubyte)

Without a held-out file, the last tenth of the training file (at most 10,000 images) is
held out. Labels are all or nothing: if one split has a labels file, the other needs one.
No checksum can say these files are right, so each is checked for what the models need:
the IDX structure, the image size, and image and label counts that agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError, IdxError
from .idx import check_idx_pair, read_idx

NAME = "idx"
# The models here are built for MNIST's 28x28 (each family's image_size; data/ cannot
# import families, so the number is repeated here and checked against them in the tests).
IMAGE_SIZE = 28
# The file name endings of each role, with or without ".gz", in the order we look.
ROLES = {
    "train images": ("train-images-idx3-ubyte",),
    "train labels": ("train-labels-idx1-ubyte",),
    "test images": ("t10k-images-idx3-ubyte", "test-images-idx3-ubyte"),
    "test labels": ("t10k-labels-idx1-ubyte", "test-labels-idx1-ubyte"),
}
HELD_OUT_FRACTION, HELD_OUT_MAX = 10, 10_000  # a tenth, at most 10,000, when there is no test file


@dataclass(frozen=True)
class FolderSplit:
    """One split of a folder: images, labels (None when the folder has none), and what it is."""

    images: np.ndarray  # uint8 (N, 28, 28)
    labels: np.ndarray | None  # uint8 (N,)
    note: str


def find_files(directory: Path) -> dict[str, Path | None]:
    """Each role's file in ``directory`` (None where absent).

    Raises:
        DataError: the folder does not exist, has no training images, holds two
            candidates for one role, or labels only one of its splits.
    """
    if not directory.is_dir():
        raise DataError(f"{directory}: no such folder (--data-dir names the folder holding your IDX files)")
    names = sorted(p.name for p in directory.iterdir() if p.is_file())
    files: dict[str, Path | None] = {}
    for role, endings in ROLES.items():
        matches = [n for n in names if n.endswith(endings) or n.endswith(tuple(e + ".gz" for e in endings))]
        if len(matches) > 1:
            raise DataError(f"{directory}: {len(matches)} files could be the {role} ({', '.join(matches)}); "
                            "keep one data set per folder")
        files[role] = directory / matches[0] if matches else None
    if files["train images"] is None:
        raise DataError(f"{directory}: no training images: expected a file named *train-images-idx3-ubyte "
                        "(.gz or not), as MNIST's")
    for split, other in (("train", "test"), ("test", "train")):
        has_images = files[f"{other} images"] is not None
        if files[f"{split} labels"] is not None and has_images and files[f"{other} labels"] is None:
            raise DataError(f"{directory}: {files[f'{split} labels'].name} labels the {split} images but "
                            f"{files[f'{other} images'].name} has no labels file (*{ROLES[f'{other} labels'][0]}); "
                            "add it, or remove the labels files to train without labels")
    if files["test labels"] is not None and files["test images"] is None:
        raise DataError(f"{directory}: {files['test labels'].name} has no images file beside it "
                        f"(*{ROLES['test images'][0]})")
    return files


def load_split(directory: Path, split: str) -> FolderSplit:
    """The ``train`` or ``test`` split of ``directory``, every file checked (module docstring).

    Raises:
        DataError: a file is missing, malformed, or not what the models take; the
            message names it.
    """
    files = find_files(directory)
    if files["test images"] is None:  # hold out the tail of the training file
        images, labels = read_pair(files["train images"], files["train labels"])
        if len(images) < 2:
            raise DataError(f"{files['train images']}: {len(images)} image(s): with no t10k file beside it, "
                            "at least 2 are needed (some train, some are held out)")
        held = min(HELD_OUT_MAX, max(1, len(images) // HELD_OUT_FRACTION))
        keep = slice(0, len(images) - held) if split == "train" else slice(len(images) - held, len(images))
        images, labels = images[keep], None if labels is None else labels[keep]
        name = files["train images"].name
        note = (f"first {len(images):,} images of {directory / name}" if split == "train" else
                f"held-out last {len(images):,} images of {directory / name} (no t10k file)")
        return FolderSplit(images, labels, note)
    images, labels = read_pair(files[f"{split} images"], files[f"{split} labels"])
    if split == "train":
        read_pair(files["test images"], files["test labels"])  # a bad held-out file fails now, not at the end
    return FolderSplit(images, labels, f"images in {directory / files[f'{split} images'].name}")


def read_pair(images_path: Path, labels_path: Path | None) -> tuple[np.ndarray, np.ndarray | None]:
    """An images file and its optional labels file, checked to belong together."""
    images = read_images(images_path)
    if labels_path is None:
        return images, None
    labels = read_idx(labels_path)
    check_idx_pair(images, labels, images_path, labels_path)
    return images, labels


def read_images(path: Path) -> np.ndarray:
    """uint8 (N, 28, 28) from an IDX file; a one-line error naming the file for anything else."""
    images = read_idx(path)
    shape = "x".join(map(str, images.shape))
    wanted = f"the models take {IMAGE_SIZE}x{IMAGE_SIZE} grayscale images, uint8 (N, {IMAGE_SIZE}, {IMAGE_SIZE})"
    if images.ndim == 4 and images.shape[-1] in (3, 4):
        raise IdxError(f"{path}: colour images ({shape}); {wanted}")
    if images.ndim != 3:
        raise IdxError(f"{path}: holds an array of shape {shape}, not images; {wanted}")
    if images.dtype != np.uint8:
        raise IdxError(f"{path}: holds {images.dtype} values; {wanted}")
    if images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise IdxError(f"{path}: images are {images.shape[1]}x{images.shape[2]}; {wanted} "
                       f"(pad or resize them to {IMAGE_SIZE}x{IMAGE_SIZE}, as MNIST's are)")
    if len(images) == 0:
        raise IdxError(f"{path}: holds no images")
    return images
