"""The pictures a run directory holds: grids after training, and two animations.

    reconstructions.png  held-out digits over their reconstructions (families with an encoder)
    samples.png          the fixed-seed sample grid (a conditional run's: one row per class)
    denoising.png        8 samples' states, x_T ... x_0 (families that denoise)
    denoising.gif        the sample grid itself going x_T -> x_0, one frame per state
    progress.gif         the sample grid at each checkpoint: what training did, frame by frame

progress.gif is put together from progress/step-NNNNNN.png, one frame written at each
checkpoint, so a resumed run keeps the frames of its first part.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from ..data.images import interleave_rows, picture, save_gif, save_grid
from .inference import denoising_trajectory, reconstruct, sample, sample_labels
from .runs import Run, as_run

GRID_SEED = 0  # the seed of the sample grids
GRID_ROW = 8  # images per row of the sample grids
MAX_GIF_FRAMES = 40  # a 1000-step chain is shown through 40 of its states
PROGRESS_DIR = "progress"
DENOISING_GIF = "denoising.gif"
PROGRESS_GIF = "progress.gif"
_FRAME = re.compile(r"step-(\d+)\.png")


def write_grids(run: Run, heldout_images: np.ndarray, out: Path | None = None,
                heldout_labels: np.ndarray | None = None) -> list[Path]:
    """The pictures every finished run gets: held-out images over their reconstructions
    (families with an encoder), samples, and for families that denoise the x_T ... x_0 strip
    and denoising.gif."""
    written, family = [], run.family
    if family.encodes:
        originals = heldout_images[:32]
        recon = reconstruct(run, originals, heldout_labels[:32] if run.conditional else None)
        written.append(save_grid(interleave_rows(originals, recon, per_row=GRID_ROW),
                                 run.run_dir / "reconstructions.png", nrow=GRID_ROW))
    # A denoising family's grid is the last state of its trajectory: one chain draws both.
    states = grid_states(run, seed=GRID_SEED) if family.denoises else None
    samples = states[:, -1] if states is not None else sample(run, seed=GRID_SEED)
    written.append(save_grid(samples, run.run_dir / "samples.png", nrow=GRID_ROW))
    if states is not None:
        strip = denoising_trajectory(run, n=8, seed=GRID_SEED)  # (8, states, 28, 28)
        written.append(save_grid(strip.reshape(-1, *strip.shape[2:]), run.run_dir / "denoising.png",
                                 nrow=strip.shape[1]))
        written.append(save_denoising_gif(states, run.run_dir / DENOISING_GIF))
    if family.guide_grid and out is not None:  # the guide promises outputs/ddpm_grid.png
        shutil.copyfile(run.run_dir / "samples.png", out / family.guide_grid)
        written.append(out / family.guide_grid)
    return written


def gif_frames(states: int, most: int = MAX_GIF_FRAMES) -> list[int]:
    """Which of ``states`` states an animation shows: all, or ``most`` evenly spread that
    keep the first (pure noise) and the last (the sample)."""
    if states <= most:
        return list(range(states))
    return sorted({round(i * (states - 1) / (most - 1)) for i in range(most)})


def grid_states(run: Run, n: int | None = None, seed: int = GRID_SEED, labels=None, **sampling) -> np.ndarray:
    """uint8 (n, states, 28, 28): the states from x_T to x_0 of the grid ``sample(run, n, seed,
    labels, **sampling)`` draws (same defaults, the same labels); the last state is that grid."""
    run = as_run(run)
    labels, n = sample_labels(run, labels, n)
    return denoising_trajectory(run, n=n, seed=seed, labels=labels, **sampling)


def save_denoising_gif(states: np.ndarray, path, nrow: int | None = GRID_ROW) -> Path:
    """``grid_states``' states animated from x_T to x_0: one frame per state (at most
    MAX_GIF_FRAMES), the last frame the grid itself. ``nrow``: images per row (None: a square)."""
    return save_gif([np.asarray(picture(states[:, i], nrow)) for i in gif_frames(states.shape[1])], path)


def write_progress_frame(run: Run, step: int, extras: dict | None = None) -> Path:
    """progress/step-NNNNNN.png: the fixed-seed sample grid of the weights the run holds now.
    ``extras``: the family's fitted statistics for these weights (the AE's latent Gaussian)."""
    kept, run.extras = run.extras, extras if extras is not None else run.extras
    try:
        return save_grid(sample(run, seed=GRID_SEED), progress_frame_path(run.run_dir, step), nrow=GRID_ROW)
    finally:
        run.extras = kept


def progress_frame_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / PROGRESS_DIR / f"step-{step:06d}.png"


def write_progress_gif(run_dir: Path, last_step: int) -> Path:
    """progress.gif from the frames of steps before ``last_step`` (a frame past it belongs to
    a part of the run that was cut off), oldest first, and samples.png as the frame of
    ``last_step``, the end of training."""
    final = progress_frame_path(run_dir, last_step)
    final.parent.mkdir(exist_ok=True)
    shutil.copyfile(Path(run_dir) / "samples.png", final)
    frames = sorted((int(m.group(1)), p) for p in (Path(run_dir) / PROGRESS_DIR).glob("step-*.png")
                    if (m := _FRAME.fullmatch(p.name)) and int(m.group(1)) <= last_step)
    pictures = [np.asarray(Image.open(p).convert("L")) for _, p in frames]
    return save_gif(pictures, Path(run_dir) / PROGRESS_GIF, frame_ms=500)
