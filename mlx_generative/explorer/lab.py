"""What the explorer's panels ask of the models, with no HTTP in sight: each method takes
checked Python values and returns images (uint8) and numbers. server.py checks requests
and turns these into JSON.

    draw           a drawing -> MNIST layout, AE and VAE reconstructions, the VAE's q(z|x), class probabilities
    latent_map     2-D PCA of the held-out digits' codes, AE and VAE
    decode_point   a point of that map -> the image its code decodes to
    interpolate    the strip between two points of the map
    slide          the VAE's code moved along its leading principal directions
    denoise        a denoising run's states x_T ... x_0 and the x_0 each one points at

The map's plane passes through the mean code and is spanned by the first two principal
directions of the codes, so a point (a, b) is the code mean + a v1 + b v2: the other
directions sit at their mean. Sliders move along the first SLIDERS directions in units of
each one's standard deviation over the held-out codes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.datasets import load_dataset
from ..data.images import to_uint8
from ..evaluation.features import classify, find_classifier
from ..families.base import NUM_CLASSES
from ..training.inference import denoising_trajectory, encode, posterior, reconstruct, sampling_settings
from ..training.runs import Run
from .preprocess import mnist_layout

MAP_POINTS = 1000  # held-out digits on each latent map
SLIDERS = 6  # leading principal directions of the VAE's codes given a slider
SLIDER_RANGE = 3.0  # sliders reach +-3 standard deviations
DIFFUSION_SAMPLES = 4  # images the diffusion player shows side by side


@dataclass
class LatentPlane:
    """The PCA of one run's held-out codes: the plane of its latent map, and the directions
    the sliders move along."""

    mean: np.ndarray  # (latent,)
    directions: np.ndarray  # (k, latent), unit, by falling variance
    spread: np.ndarray  # (k,) the codes' standard deviation along each
    points: np.ndarray  # (MAP_POINTS, 2) the held-out codes, projected
    labels: np.ndarray  # (MAP_POINTS,)

    @classmethod
    def fit(cls, codes: np.ndarray, labels: np.ndarray) -> LatentPlane:
        mean = codes.mean(axis=0)
        centred = codes - mean
        _, singular, vt = np.linalg.svd(centred, full_matrices=False)
        spread = singular / np.sqrt(max(1, len(codes) - 1))
        return cls(mean=mean, directions=vt, spread=spread, points=centred @ vt[:2].T, labels=labels)

    def code(self, coefficients: np.ndarray) -> np.ndarray:
        """mean + sum_i c_i v_i for the first len(c) directions; (N, k) -> (N, latent)."""
        c = np.atleast_2d(np.asarray(coefficients, dtype=np.float32))
        return (self.mean + c @ self.directions[: c.shape[1]]).astype(np.float32)


class Lab:
    """The models behind the page: an AE, a VAE (unconditional), the classifier of their
    data, and any number of denoising runs (DDPM, flow; conditional or not). Each may be
    missing; the panel that needs it then says so."""

    def __init__(self, ae: Run | None, vae: Run | None, denoisers: dict[str, Run]):
        self.ae, self.vae, self.denoisers = ae, vae, denoisers
        coded = [r for r in (ae, vae) if r is not None]
        dataset = coded[0].config.train if coded else None
        self.classifier = find_classifier(dataset.dataset) if dataset else None
        self.planes: dict[str, LatentPlane] = {}
        if coded:
            heldout = load_dataset(dataset.dataset, "test", dataset.data_dir)
            images = heldout.images[:MAP_POINTS]
            labels = (heldout.labels[:MAP_POINTS] if heldout.labels is not None
                      else np.full(len(images), -1, np.int64))
            for name, run in (("ae", ae), ("vae", vae)):
                if run is not None:
                    self.planes[name] = LatentPlane.fit(encode(run, images), labels)

    def coder(self, name: str) -> Run | None:
        return {"ae": self.ae, "vae": self.vae}.get(name)

    # ---- the panels ------------------------------------------------------------------

    def draw(self, canvas: np.ndarray) -> dict:
        """The drawing laid out as MNIST, what each model makes of it."""
        digit = mnist_layout(canvas)[None]  # (1, 28, 28)
        out: dict = {"input": digit[0]}
        if self.ae is not None:
            out["ae"] = reconstruct(self.ae, digit)[0]
        if self.vae is not None:
            out["vae"] = reconstruct(self.vae, digit)[0]
            mu, sigma = posterior(self.vae, digit)
            out["mu"], out["sigma"] = mu[0], sigma[0]
        if self.classifier is not None:
            out["probs"] = classify(self.classifier, digit)[1][0]
        return out

    def decode_points(self, name: str, points: np.ndarray) -> np.ndarray:
        """(N, 2) map points of run ``name`` -> uint8 (N, 28, 28)."""
        run = self.coder(name)
        return to_uint8(run.family.decode(run.model, self.planes[name].code(points)))

    def interpolate(self, name: str, start: np.ndarray, end: np.ndarray, steps: int) -> np.ndarray:
        """``steps`` images evenly spaced on the segment from map point ``start`` to ``end``."""
        w = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
        return self.decode_points(name, (1.0 - w) * start + w * end)

    def slide(self, values: np.ndarray) -> np.ndarray:
        """The VAE's image at mean + sum_i values_i spread_i v_i: uint8 (28, 28)."""
        plane = self.planes["vae"]
        coefficients = np.asarray(values, dtype=np.float32) * plane.spread[: len(values)]
        return to_uint8(self.vae.family.decode(self.vae.model, plane.code(coefficients)))[0]

    def denoise(self, name: str, seed: int, sampler: str | None, steps: int | None, label: int | None,
                guidance: float | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(states, predicted x_0), each uint8 (DIFFUSION_SAMPLES, states, 28, 28), and a name for
        each state."""
        run = self.denoisers[name]
        labels = None if label is None else np.full(DIFFUSION_SAMPLES, label, np.int32)
        states, x0s = denoising_trajectory(run, n=DIFFUSION_SAMPLES, seed=seed, labels=labels, predictions=True,
                                           sampler=sampler, steps=steps, guidance=guidance)
        settings = sampling_settings(run, dict(sampler=sampler, steps=steps, guidance=guidance))
        return states, x0s, run.family.trajectory_labels(states.shape[1], run.config.train, settings)

    def warm_up(self) -> None:
        """Ask every panel once, so that MLX builds the kernels each needs now, at start-up,
        and not while someone waits for their first click."""
        stroke = np.zeros((56, 56), np.float32)
        stroke[10:46, 26:31] = 1.0  # a "1"
        self.draw(stroke)
        for name in self.planes:
            self.interpolate(name, np.zeros(2, np.float32), np.ones(2, np.float32), 8)
            self.decode_points(name, np.zeros((1, 2), np.float32))
        if self.vae is not None:
            self.slide(np.zeros(min(SLIDERS, len(self.planes["vae"].spread)), np.float32))
        for name, run in self.denoisers.items():
            for sampler in denoiser_choices(name, run)["samplers"]:
                self.denoise(name, 0, sampler, None, 0 if run.conditional else None, None)

    def describe(self) -> dict:
        """What the page needs to lay itself out: which models there are, and their choices."""
        def coder(name):
            run = self.coder(name)
            return None if run is None else {"run": str(run.run_dir), "latent_dim": run.model.args.latent_dim}

        return {
            "ae": coder("ae"), "vae": coder("vae"), "classifier": self.classifier is not None,
            "classes": NUM_CLASSES, "sliders": min(SLIDERS, len(self.planes["vae"].spread)) if self.vae else 0,
            "slider_range": SLIDER_RANGE, "diffusion_samples": DIFFUSION_SAMPLES,
            "denoisers": [denoiser_choices(name, run) for name, run in self.denoisers.items()],
        }


def denoiser_choices(name: str, run: Run) -> dict:
    """A denoising run's sampler choices for the player: each sampler, whether it takes a
    number of steps, and the most it can take."""
    opts = run.config.train
    samplers = {sampler: {"stepped": most != 0, "max_steps": most if most is not None else MAX_FREE_STEPS}
                for sampler, most in run.family.step_limits(opts).items()}
    default = run.family.sampling(opts, {})
    return {
        "name": name, "kind": run.kind, "run": str(run.run_dir), "conditional": run.conditional,
        "samplers": samplers, "sampler": default.sampler, "steps": default.steps,
        "guidance": default.guidance if run.conditional else None,
    }


MAX_FREE_STEPS = 100  # the player animates a chain of at most this many steps where the sampler has no limit
