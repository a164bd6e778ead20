"""`evaluate(run)`: held-out likelihoods and sample quality of a trained run, into eval.json.

Every figure is printed beside its reference, so it can be read:
  - held-out losses (AE MSE/BCE, VAE -ELBO and the IWAE bound, DDPM eps-MSE) on the
    data set's real test split when one is found (`datasets.load_heldout`);
  - sample metrics on the penultimate features of the project's own classifier
    (`bin/train classifier`): Frechet distance to the test split, Inception Score,
    classifier confidence, precision and recall (k-NN). The same metrics for real
    training images against the test split are the floor a perfect model reaches.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import mlx.core as mx
import numpy as np

from . import checkpoint, sample_metrics
from .api import _as_run, _say, load, sample
from .batches import to_model_input
from .datasets import REPO_DATA_DIR, load_dataset, load_heldout, user_cache_dir
from .errors import UsageError
from .kinds import EVAL_BATCH, KINDS, NUM_CLASSES, balanced_labels
from .likelihood import iwae_nll

EVAL_FILE = "eval.json"
BINARIZE_SEED = 0  # the one fixed Bernoulli draw that binarizes the test set


# ---- the classifier whose features the sample metrics use -----------------------------


def dataset_family(dataset: str) -> str:
    """The sample's digits are MNIST digits: judged on MNIST's test split, by the MNIST classifier."""
    return "mnist" if dataset in ("mnist", "mnist-sample") else dataset


def classifier_dirs(dataset: str) -> list[Path]:
    """Where a data set's classifier run is looked for: the user cache, then the shipped one."""
    family = dataset_family(dataset)
    return [user_cache_dir("classifiers") / family, REPO_DATA_DIR / "classifiers" / family]


def find_classifier(dataset: str, explicit=None):
    """The classifier ``Run`` for ``dataset`` (``explicit``: a run directory), or None."""
    if explicit is not None:
        run = load(explicit)
        if run.kind != "classifier":
            raise UsageError(f"--classifier {explicit}: not a classifier run (its kind is {run.kind})")
        return run
    for directory in classifier_dirs(dataset):
        if (directory / checkpoint.CONFIG).is_file():
            return load(directory)
    return None


def classify(classifier, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, H, W) -> (features (N, D), class probabilities (N, C))."""
    model = classifier.model
    model.eval()  # no dropout
    x = to_model_input(images, "unit")
    features, probs = [], []
    for a in range(0, len(x), EVAL_BATCH):
        f = model.features(mx.array(x[a : a + EVAL_BATCH]))
        p = mx.softmax(model.head(f), axis=-1)
        features.append(np.array(f))
        probs.append(np.array(p))
    return np.concatenate(features), np.concatenate(probs)


def sample_quality(features, probs, reference_features, k: int = 3) -> dict:
    """The sample metrics of one image set against the reference (test) features."""
    precision, recall = sample_metrics.precision_recall(reference_features, features, k=k)
    return {
        "frechet_distance": sample_metrics.frechet_distance(features, reference_features),
        "inception_score": sample_metrics.inception_score(probs),
        "confidence": sample_metrics.confidence(probs),
        "precision": precision,
        "recall": recall,
    }


def label_agreement(features, probs, labels, reference_features, reference_labels) -> dict:
    """A conditional model's samples against the labels they were asked for: the classifier's
    accuracy, and the Frechet distance of each class's samples to that class's test images."""
    predicted = probs.argmax(axis=1)
    per_class = []
    for c in range(NUM_CLASSES):
        asked, real = labels == c, reference_labels == c
        if not asked.any():
            continue
        per_class.append({
            "class": c,
            "n": int(asked.sum()),
            "accuracy": float(np.mean(predicted[asked] == c)),
            # Needs a few images of the class on both sides for a covariance.
            "frechet_distance": sample_metrics.frechet_distance(features[asked], reference_features[real])
            if asked.sum() > 1 and real.sum() > 1 else None,
        })
    distances = [c["frechet_distance"] for c in per_class if c["frechet_distance"] is not None]
    return {
        "accuracy": float(np.mean(predicted == labels)),
        "mean_class_frechet_distance": float(np.mean(distances)) if distances else None,
        "per_class": per_class,
    }


# ---- evaluate -------------------------------------------------------------------------


def binarize(x: np.ndarray, seed: int = BINARIZE_SEED) -> np.ndarray:
    """One fixed Bernoulli(pixel) draw: the binarized test set of the likelihood literature."""
    return (np.random.default_rng(seed).random(x.shape, dtype=np.float32) < x).astype(np.float32)


def evaluate(
    run,
    n_samples: int = 10_000,
    *,
    seed: int = 0,
    iwae_k: int = 1000,
    iwae_images: int = 1000,
    iwae: bool = True,
    heldout_images: int | None = None,
    knn_k: int = 3,
    classifier=None,
    data_dir=None,
    sampler: str | None = None,
    steps: int | None = None,
    eta: float | None = None,
    sigma: str | None = None,
    guidance: float | None = None,
    write: bool = True,
    verbose: bool = True,
) -> dict:
    """Evaluate a trained run; returns the figures and writes them to RUN_DIR/eval.json.

    n_samples: generated images for the sample metrics (and real training images
        for the floor, as many as there are).
    iwae_k, iwae_images: VAE only; importance samples per image and how many test
        images the IWAE bound averages over (it costs k decoder passes per image).
    iwae: False skips the IWAE bound (a sweep's quick evaluation).
    heldout_images: use only the first N test images (default all): a quick look.
    classifier: a classifier run directory; default the data set's cached or
        shipped one (`classifier_dirs`). Without one, sample metrics are skipped.
    sampler, steps, eta, sigma: DDPM sampling options, as for `sample`.
    guidance: a conditional DDPM's guidance weight (default: the run's).

    A conditional run draws every class equally often and is also scored on whether
    its samples are the classes asked for ("conditional": accuracy and Frechet distance
    per class, beside the same figures for real training images).
    """
    run = _as_run(run)
    kind = KINDS[run.kind]
    if not kind.generative:
        raise UsageError(f"evaluate needs an ae, vae or ddpm run, not a {run.kind}")
    # k-NN radii need more than k points in each set.
    limits = dict(knn_k=(knn_k, 1), n_samples=(n_samples, knn_k + 1), iwae_k=(iwae_k, 1),
                  iwae_images=(iwae_images, 1), heldout_images=(heldout_images, knn_k + 1))
    for name, (value, low) in limits.items():
        if value is not None and value < low:
            raise UsageError(f"{name} must be >= {low}, got {value}")
    dataset = run.config["data"]["dataset"]
    test = load_heldout(dataset_family(dataset), data_dir)  # the real MNIST test split for the sample too
    if heldout_images is not None:
        test = dataclasses.replace(test, images=test.images[:heldout_images], labels=test.labels[:heldout_images])
    result: dict = {"run": str(run.run_dir) if run.run_dir else None, "kind": run.kind, "dataset": dataset}

    # Held-out losses, on the pixels the model was trained on.
    x = to_model_input(test.images, kind.scale)
    binarized = run.config["data"].get("binarize") == "dynamic"
    if binarized:
        x = binarize(x)
    data_note = f"{test.note} ({len(x):,} images{', binarized: one fixed Bernoulli draw' if binarized else ''})"
    _say(f"evaluating {run.run_dir or run.kind} on the {data_note}", verbose)
    result["heldout"] = {"data": data_note, **kind.heldout(run.model, x, run.config, labels=test.labels)}
    if run.kind == "vae" and iwae:
        started = time.perf_counter()
        m = min(iwae_images, len(x))
        nll = iwae_nll(run.model, x[:m], k=iwae_k, seed=seed, labels=test.labels[:m] if run.conditional else None)
        result["iwae"] = {
            "nll": float(nll.mean()),
            "stderr": float(nll.std(ddof=1) / math.sqrt(m)) if m > 1 else None,
            "k": iwae_k,
            "images": m,
            "seconds": round(time.perf_counter() - started, 1),
        }

    # Sample quality on classifier features.
    clf = find_classifier(dataset, classifier)
    if clf is None:
        result["samples"] = None
        _say(
            f"note: no classifier for {dataset_family(dataset)} (looked in "
            f"{', '.join(map(str, classifier_dirs(dataset)))}); sample metrics skipped. "
            f"Train one with: bin/train classifier --dataset {dataset}",
            verbose,
        )
    else:
        options = {k: v for k, v in dict(sampler=sampler, steps=steps, eta=eta, sigma=sigma,
                                         guidance=guidance).items() if v is not None}
        labels = balanced_labels(n_samples) if run.conditional else None
        started = time.perf_counter()
        generated = sample(run, n=n_samples, seed=seed, labels=labels, **options)
        seconds = time.perf_counter() - started
        test_features, test_probs = classify(clf, test.images)
        features, probs = classify(clf, generated)
        train = load_dataset(dataset, "train", data_dir)
        train_images, train_labels = train.images[:n_samples], train.labels[:n_samples]
        train_features, train_probs = classify(clf, train_images)
        result["classifier"] = {
            "run": str(clf.run_dir),
            "heldout_accuracy": float(np.mean(test_probs.argmax(1) == test.labels)),
        }
        result["samples"] = {
            "n": n_samples,
            "seed": seed,
            "sampling": options or "default",
            "seconds": round(seconds, 1),
            **sample_quality(features, probs, test_features, knn_k),
        }
        result["reference"] = {
            "train_vs_test": {"n": len(train_images), **sample_quality(train_features, train_probs, test_features, knn_k)},
            "test": {
                "n": len(test.images),
                "inception_score": sample_metrics.inception_score(test_probs),
                "confidence": sample_metrics.confidence(test_probs),
            },
        }
        if run.conditional:
            if run.kind == "ddpm":
                result["samples"]["guidance"] = guidance if guidance is not None else run.config["train"].get("guidance")
            result["conditional"] = label_agreement(features, probs, labels, test_features, test.labels)
            result["reference"]["conditional"] = label_agreement(
                train_features, train_probs, train_labels, test_features, test.labels
            )
    if write and run.run_dir is not None:
        checkpoint.write_json(Path(run.run_dir) / EVAL_FILE, result)
    return result


# ---- the readable table ---------------------------------------------------------------

_HELDOUT_LABELS = {
    "mse": "MSE per pixel",
    "bce": "BCE per pixel",
    "neg_elbo": "-ELBO (nats/image)",
    "kl": "  of which KL",
}


def format_result(result: dict) -> str:
    """eval.json as a table a person can read."""
    lines = [f"{result['kind']} run {result['run']}", f"held-out: {result['heldout']['data']}"]
    held = result["heldout"]
    order = ["neg_elbo", "bce", "kl"] if result["kind"] == "vae" else [k for k in held if k != "data"]
    for key in order:
        label = "eps-MSE (noise prediction)" if result["kind"] == "ddpm" else _HELDOUT_LABELS.get(key, key)
        if key == "bce" and result["kind"] == "vae":
            label = "  of which reconstruction (BCE)"
        lines.append(f"  {label:<44} {held[key]:10.4f}")
    if "iwae" in result:
        w = result["iwae"]
        lines.append(
            f"  {'IWAE NLL bound (nats/image, k=' + str(w['k']) + ')':<44} {w['nll']:10.2f}"
            f"  +- {w['stderr']:.2f} over the first {w['images']:,} images ({w['seconds']} s)"
        )
    samples = result.get("samples")
    if samples:
        ref, test = result["reference"]["train_vs_test"], result["reference"]["test"]
        lines.append(
            f"samples: {samples['n']:,} generated in {samples['seconds']} s ({samples['sampling']}); "
            f"classifier {result['classifier']['run']} ({result['classifier']['heldout_accuracy']:.2%} on held-out)"
        )
        lines.append(f"  {'':<24} {'generated':>10} {'real train (floor)':>20} {'real test':>10}")
        for key, label in (
            ("frechet_distance", "Frechet distance"),
            ("inception_score", "Inception Score"),
            ("confidence", "classifier confidence"),
            ("precision", "precision (k-NN)"),
            ("recall", "recall (k-NN)"),
        ):
            real_test = f"{test[key]:10.3f}" if key in test else f"{'':>10}"
            lines.append(f"  {label:<24} {samples[key]:10.3f} {ref[key]:20.3f} {real_test}")
        lines.append(f"  (floor: {ref['n']:,} real training images measured the same way)")
        if "conditional" in result:
            lines.extend(_format_conditional(result))
    elif samples is None:
        lines.append("samples: not measured (no classifier)")
    return "\n".join(lines)


def _format_conditional(result: dict) -> list[str]:
    """Per class: how often the classifier sees the class asked for, and the class's FD."""
    got, real = result["conditional"], result["reference"]["conditional"]
    guidance = result["samples"].get("guidance")
    lines = [
        "labels asked for vs classifier's verdict"
        + (f" (guidance w = {guidance:g})" if guidance is not None else "") + ":",
        f"  {'class':<8} {'accuracy':>10} {'real train':>11} {'Frechet distance':>17} {'real train':>11}",
    ]
    real_by_class = {c["class"]: c for c in real["per_class"]}

    def fd(value):
        return f"{value:17.1f}" if value is not None else f"{'-':>17}"

    for c in got["per_class"]:
        r = real_by_class.get(c["class"], {})
        lines.append(
            f"  {c['class']:<8} {c['accuracy']:10.1%} {r.get('accuracy', float('nan')):11.1%} "
            f"{fd(c['frechet_distance'])} {r.get('frechet_distance') or float('nan'):11.1f}"
        )
    lines.append(
        f"  {'all':<8} {got['accuracy']:10.1%} {real['accuracy']:11.1%} {fd(got['mean_class_frechet_distance'])} "
        f"{real['mean_class_frechet_distance'] or float('nan'):11.1f}  (FD: mean over classes)"
    )
    return lines
