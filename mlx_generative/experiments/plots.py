"""Figures for learning by tweaking: loss curves, latent maps, interpolations, denoising strips.

Every function takes one run or a list of runs (run directories or `Run`s) and returns a
matplotlib ``Figure`` (a notebook shows it; `save_figure` writes a PNG). Several runs give
one panel or line each, titled by ``names`` (default: their directory names), which is how
a lesson is seen: an AE's and a VAE's latent maps side by side.

matplotlib is the optional ``viz`` extra (``pip install 'mlx-generative[viz]'``); the rest
of the package works without it. Figures are built on ``matplotlib.figure.Figure``, not
pyplot, so making them changes no global state and needs no display.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from ..data.datasets import heldout_for_run
from ..data.images import grid
from ..errors import UsageError
from ..families import names_of
from ..training import checkpoint, runconfig
from ..training.inference import denoising_trajectory, encode, interpolate, reconstruct
from ..training.runs import as_run

INSTALL_HINT = "pip install 'mlx-generative[viz]' (in a checkout: uv sync, which installs it)"
CLASS_NAMES = {
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
}
PANELS_PER_ROW = 3


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401  (optional, heavy: imported only where a figure is made)
    except ImportError:
        return False
    return True


def _figure(rows: int, cols: int, panel_size: tuple[float, float]):
    if not matplotlib_available():
        raise UsageError(f"plots need matplotlib: {INSTALL_HINT}")
    from matplotlib.figure import Figure  # the optional viz extra, imported where it is used

    fig = Figure(figsize=(panel_size[0] * cols, panel_size[1] * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, axes


def _grid_of_panels(n: int, panel_size: tuple[float, float]):
    """A figure with ``n`` panels, PANELS_PER_ROW to a row; spare axes hidden."""
    cols = min(n, PANELS_PER_ROW)
    rows = math.ceil(n / cols)
    fig, axes = _figure(rows, cols, panel_size)
    flat = axes.ravel()
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def save_figure(fig, path, dpi: int = 100) -> Path:
    """Write a figure as PNG (atomically: a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="png", dpi=dpi)
    os.replace(tmp, path)
    return path


def _runs(runs, names):
    single_pair = isinstance(runs, tuple) and len(runs) == 2 and isinstance(runs[1], dict)  # (model, config)
    if not isinstance(runs, (list, tuple)) or single_pair:
        runs = [runs]
    loaded = [as_run(r) for r in runs]
    if not loaded:
        raise UsageError("no runs to plot")
    if names is None:
        names = [Path(r.run_dir).name if r.run_dir else r.kind for r in loaded]
    if len(names) != len(loaded):
        raise UsageError(f"got {len(names)} names for {len(loaded)} runs")
    return loaded, list(names)


def heldout_digits(run, n: int | None = None):
    """The held-out images and labels a run's figures use: its data set's test split."""
    test = heldout_for_run(run.config.data.dataset, run.config.train.data_dir)
    return test.images[:n], None if test.labels is None else test.labels[:n]


# ---- loss curves ----------------------------------------------------------------------


def curves(run_dir) -> dict:
    """A run's training and held-out curves of its family's first held-out metric, from metrics.jsonl."""
    metric = runconfig.read(run_dir).family.heldout_metrics[0]
    key, label = metric.key, metric.label.strip()
    train, heldout = ([], []), ([], [])
    for record in checkpoint.read_metrics(Path(run_dir)):
        target = {"train": train, "test": heldout}.get(record.get("split"))
        if target is not None and key in record:
            target[0].append(record["step"])
            target[1].append(record[key])
    return {"metric": key, "label": label, "train": train, "heldout": heldout}


def loss_curves(runs, names=None):
    """Training (thin line) and held-out (dots) curves of every run on one plot per metric,
    one colour per run; log y-axis, since the first steps' losses dwarf the rest."""
    from matplotlib.lines import Line2D  # the optional viz extra

    loaded, names = _runs(runs, names)
    per_run = [curves(r.run_dir) for r in loaded]
    labels = list(dict.fromkeys(c["label"] for c in per_run))  # one plot per metric, in order
    fig, axes = _figure(1, len(labels), (8.0, 4.2))
    colours = _colours(len(loaded))
    for ax, label in zip(axes[0], labels):
        handles = []
        for c, name, colour in zip(per_run, names, colours):
            if c["label"] != label:
                continue
            ax.plot(*c["train"], color=colour, linewidth=1.0, alpha=0.8)
            if c["heldout"][0]:
                ax.plot(*c["heldout"], color=colour, linestyle="--", marker="o", markersize=4)
            handles.append(Line2D([], [], color=colour, linewidth=2, label=name))
        # One entry per run (its colour), then what the two line styles mean.
        handles += [Line2D([], [], color="grey", linewidth=1, label="training"),
                    Line2D([], [], color="grey", linestyle="--", marker="o", markersize=4, label="held-out")]
        ax.set_yscale("log")
        ax.set_xlabel("training step")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(handles=handles, fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle("Loss curves: training (lines) and held-out (dots)")
    return fig


def _colours(n: int):
    from matplotlib import colormaps  # the optional viz extra

    cmap = colormaps["tab10" if n <= 10 else "viridis"]
    return [cmap(i if n <= 10 else i / max(1, n - 1)) for i in range(n)]


# ---- latent maps ----------------------------------------------------------------------


def project_2d(codes: np.ndarray, method: str = "pca", seed: int = 0) -> tuple[np.ndarray, tuple[str, str]]:
    """(N, D) codes -> (N, 2) points and the two axis labels. ``method``: pca or tsne."""
    codes = np.asarray(codes, dtype=np.float64)
    if method == "pca":
        centred = codes - codes.mean(axis=0)
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        share = s**2 / max(float((s**2).sum()), 1e-12)
        points = centred @ vt[:2].T
        if points.shape[1] < 2:  # a 1-D latent: the second axis is empty
            points = np.pad(points, ((0, 0), (0, 2 - points.shape[1])))
            share = np.pad(share, (0, 1))
        return points, tuple(f"PC{i + 1} ({share[i]:.0%} of variance)" for i in range(2))
    if method == "tsne":
        try:
            from sklearn.manifold import TSNE  # optional and heavy: only for method="tsne"
        except ImportError:
            raise UsageError("method='tsne' needs scikit-learn: pip install scikit-learn") from None
        points = TSNE(n_components=2, init="pca", random_state=seed, perplexity=30).fit_transform(codes)
        return points, ("t-SNE 1", "t-SNE 2")
    raise UsageError(f"method must be pca or tsne, got {method!r}")


def latent_map(runs, images=None, labels=None, *, method: str = "pca", n: int = 2000, names=None):
    """AE codes / VAE posterior means of held-out images in 2-D, coloured by label."""
    loaded, names = _runs(runs, names)
    for r in loaded:
        if not r.family.encodes:
            raise UsageError(f"a latent map needs {names_of(lambda f: f.encodes)} runs, got a {r.kind}")
    fig, axes = _grid_of_panels(len(loaded), (5.0, 4.6))
    for ax, run, name in zip(axes, loaded, names):
        x, y = (images, labels) if images is not None else heldout_digits(run, n)
        points, (xlabel, ylabel) = project_2d(encode(run, x, y if run.conditional else None), method)
        classes = CLASS_NAMES.get(run.config.data.dataset)
        if y is None:  # the user's own data without labels: one colour
            ax.scatter(points[:, 0], points[:, 1], s=4, alpha=0.7)
        else:
            scatter = ax.scatter(points[:, 0], points[:, 1], c=y, cmap="tab10", vmin=-0.5, vmax=9.5, s=4, alpha=0.7)
            handles, _ = scatter.legend_elements(num=list(range(10)))
            ax.legend(handles, classes or [str(i) for i in range(10)], title="label", fontsize="x-small",
                      loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=0.8)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        what = run.family.code_name + (" given the label" if run.conditional else "")
        ax.set_title(f"{name}\n{run.family.title} {what}, {len(points):,} held-out images", fontsize="medium")
    fig.suptitle(f"Latent map ({method.upper() if method == 'pca' else 't-SNE'})")
    return fig


# ---- image strips ---------------------------------------------------------------------


def _strip_panel(ax, strips: np.ndarray, column_labels: list[str], title: str, xlabel: str) -> None:
    """uint8 (rows, cols, H, W) as one image, one tick label per column."""
    rows, cols, h, w = strips.shape
    pad = 2
    canvas = grid(strips.reshape(rows * cols, h, w), nrow=cols, padding=pad, background=255)
    ax.imshow(canvas, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.set_xticks([pad + c * (w + pad) + w / 2 for c in range(cols)], column_labels, fontsize="x-small")
    ax.set_yticks([])
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize="medium")


def interpolation_grid(runs, *, pairs: int = 4, steps: int = 8, names=None, images=None):
    """Between pairs of held-out digits (one row each: the two originals at the ends),
    decode evenly spaced points on the line between their codes; one panel per run."""
    loaded, names = _runs(runs, names)
    fig, axes = _grid_of_panels(len(loaded), (0.62 * (steps + 2) + 0.6, 0.62 * pairs + 1.5))
    for ax, run, name in zip(axes, loaded, names):
        if not run.family.encodes:
            raise UsageError(f"an interpolation needs {names_of(lambda f: f.encodes)} runs, got a {run.kind}")
        start, end = images if images is not None else _contrasting_pairs(run, pairs)
        between = interpolate(run, start, end, steps)
        strips = np.concatenate([np.asarray(start)[:, None], between, np.asarray(end)[:, None]], axis=1)
        labels = ["A"] + [f"{w:.2g}" for w in np.linspace(0, 1, steps)] + ["B"]
        _strip_panel(ax, strips, labels, f"{name} ({run.kind.upper()})",
                     "w: decoded (1 - w) code(A) + w code(B), between the originals A and B")
    fig.suptitle("Latent interpolation between held-out images")
    return fig


def reconstruction_rows(runs, *, n: int = 12, names=None):
    """The same held-out images reconstructed by each run, one row per run under the
    originals: how sharpness changes with a setting (latent size, beta) is seen at a glance."""
    loaded, names = _runs(runs, names)
    for run in loaded:
        if not run.family.encodes:
            raise UsageError(f"reconstructions need {names_of(lambda f: f.encodes)} runs, got a {run.kind}")
    originals, labels = heldout_digits(loaded[0], n)
    rows = [originals] + [reconstruct(run, originals, labels if run.conditional else None) for run in loaded]
    fig, axes = _figure(1, 1, (0.55 * n + 2.5, 0.55 * len(rows) + 0.8))
    ax = axes[0, 0]
    _strip_panel(ax, np.stack(rows), [""] * n, "", "")
    ax.set_xticks([])
    pitch = (rows[0].shape[1] + 2)
    ax.set_yticks([2 + r * pitch + rows[0].shape[1] / 2 for r in range(len(rows))], ["held-out originals", *names],
                  fontsize="small")
    fig.suptitle("Reconstructions of the same held-out images")
    return fig


def _contrasting_pairs(run, pairs: int):
    """Held-out image pairs of different classes: the first 0 with the first 9, 1 with 8, ..."""
    images, labels = heldout_digits(run)
    if labels is None:  # no classes to contrast: the first images, paired in order
        return images[0 : 2 * pairs : 2], images[1 : 2 * pairs : 2]
    first = {c: int(np.argmax(labels == c)) for c in range(10) if (labels == c).any()}
    chosen = [(first[a], first[9 - a]) for a in range(10) if a in first and 9 - a in first][:pairs]
    if len(chosen) < pairs:
        raise UsageError(f"the held-out split has too few classes for {pairs} pairs")
    return images[[a for a, _ in chosen]], images[[b for _, b in chosen]]


def denoising_strip(runs, *, n: int = 4, seed: int = 0, names=None):
    """DDPM: x_T (pure noise) ... x_0 (the sample) for ``n`` samples, one column per step."""
    loaded, names = _runs(runs, names)
    for run in loaded:
        if not run.family.denoises:
            raise UsageError(f"a denoising strip needs {names_of(lambda f: f.denoises)} runs, got a {run.kind}")
    strips = [denoising_trajectory(run, n=n, seed=seed) for run in loaded]  # each (n, states, 28, 28)
    longest = max(strip.shape[1] for strip in strips)
    fig, axes = _grid_of_panels(len(loaded), (0.6 * longest + 0.6, 0.6 * n + 1.5))
    for ax, run, name, strip in zip(axes, loaded, names, strips):
        _strip_panel(ax, strip, run.family.trajectory_labels(strip.shape[1]),
                     f"{name} ({run.family.describe(run.config.train)})", "sampling step")
    fig.suptitle("Denoising: from noise x_T to sample x_0")
    return fig
