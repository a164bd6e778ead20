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

import numpy as np

from ..console import Speaker
from ..data import idx_folder
from ..data.batches import to_model_input
from ..data.datasets import evaluation_dataset, load_dataset, load_heldout, run_data_dir
from ..errors import UsageError
from ..families import FAMILIES, names_of
from ..families.base import NUM_CLASSES, balanced_labels
from ..training import checkpoint
from ..training.inference import sample, sampling_settings
from ..training.runs import as_run, output_dir
from . import sample_metrics
from .features import classifier_dirs, classify, find_classifier

EVAL_FILE = "eval.json"
BINARIZE_SEED = 0  # the one fixed Bernoulli draw that binarizes the test set
# What needs a classifier of the data set's classes, said by name when there is none.
SAMPLE_FIGURES = "Frechet distance, Inception Score, confidence, precision and recall of the samples"


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
    spacing: str | None = None,
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
    sampler, steps, eta, sigma, spacing: sampling options, as for `sample`.
    guidance: a conditional DDPM's guidance weight (default: the run's).

    A conditional run draws every class equally often and is also scored on whether
    its samples are the classes asked for ("conditional": accuracy and Frechet distance
    per class, beside the same figures for real training images).
    """
    run = as_run(run)
    family, say = run.family, Speaker(verbose)
    if not family.generative:
        raise UsageError(f"evaluate needs an {names_of(lambda f: f.generative)} run, not a {run.kind}")
    # k-NN radii need more than k points in each set.
    limits = dict(knn_k=(knn_k, 1), n_samples=(n_samples, knn_k + 1), iwae_k=(iwae_k, 1),
                  iwae_images=(iwae_images, 1), heldout_images=(heldout_images, knn_k + 1))
    for name, (value, low) in limits.items():
        if value is not None and value < low:
            raise UsageError(f"{name} must be >= {low}, got {value}")
    overrides = {k: v for k, v in dict(sampler=sampler, steps=steps, eta=eta, sigma=sigma,
                                       guidance=guidance, spacing=spacing).items() if v is not None}
    settings = sampling_settings(run, overrides)  # a bad sampling option fails before any work
    dataset = run.config.data.dataset
    own_data = dataset == idx_folder.NAME
    data_dir = run_data_dir(dataset, run.config.train.data_dir, data_dir)  # also for the training images below
    clf = find_classifier(dataset, classifier)  # so does a bad --classifier
    test = load_heldout(evaluation_dataset(dataset), data_dir)  # the real MNIST test split for the sample too
    if heldout_images is not None:
        test = dataclasses.replace(test, images=test.images[:heldout_images],
                                   labels=None if test.labels is None else test.labels[:heldout_images])
    result: dict = {"run": str(run.run_dir) if run.run_dir else None, "kind": run.kind, "dataset": dataset}

    # Held-out losses, on the pixels the model was trained on.
    x = to_model_input(test.images, family.scale)
    binarized = run.config.train.binarize == "dynamic"
    if binarized:
        x = binarize(x)
    data_note = f"{test.note} ({len(x):,} images{', binarized: one fixed Bernoulli draw' if binarized else ''})"
    say(f"evaluating {run.run_dir or run.kind} on the {data_note}")
    result["heldout"] = {"data": data_note, **family.heldout(run.model, x, run.config.train, labels=test.labels)}
    if iwae and family.bounds_likelihood:
        started = time.perf_counter()
        m = min(iwae_images, len(x))
        nll = family.likelihood_bound(run.model, x[:m], k=iwae_k, seed=seed,
                                      labels=test.labels[:m] if run.conditional else None)
        result["iwae"] = {
            "nll": float(nll.mean()),
            "stderr": float(nll.std(ddof=1) / math.sqrt(m)) if m > 1 else None,
            "k": iwae_k,
            "images": m,
            "seconds": round(time.perf_counter() - started, 1),
        }

    # Sample quality on classifier features.
    if clf is None:
        result["samples"] = None
        result["skipped"] = SAMPLE_FIGURES
        if own_data:  # no classifier knows the user's own classes
            say(f"note: no classifier for your own IDX data, so these figures are not computed: {SAMPLE_FIGURES}. "
                f"Train one on the same folder (it needs labels) and pass it: bin/train classifier --dataset "
                f"{dataset} --data-dir {data_dir}, then bin/eval RUN --classifier CLASSIFIER_RUN")
        else:
            say(f"note: no classifier for {evaluation_dataset(dataset)} (looked in "
                f"{', '.join(map(str, classifier_dirs(dataset)))}); sample metrics skipped "
                f"({SAMPLE_FIGURES}). Train one with: bin/train classifier --dataset {dataset}")
    else:
        labels = balanced_labels(n_samples) if run.conditional else None
        started = time.perf_counter()
        generated = sample(run, n=n_samples, seed=seed, labels=labels, **overrides)
        seconds = time.perf_counter() - started
        test_features, test_probs = classify(clf, test.images)
        features, probs = classify(clf, generated)
        train = load_dataset(dataset, "train", data_dir)
        train_images, train_labels = train.images[:n_samples], train.labels[:n_samples]
        train_features, train_probs = classify(clf, train_images)
        result["classifier"] = {
            "run": str(clf.run_dir),
            "heldout_accuracy": None if test.labels is None else float(np.mean(test_probs.argmax(1) == test.labels)),
        }
        if test.labels is None:
            say("note: the held-out images have no labels, so the classifier's held-out accuracy is not computed")
        result["samples"] = {
            "n": n_samples,
            "seed": seed,
            "sampling": overrides or "default",
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
            if getattr(settings, "guidance", None) is not None:
                result["samples"]["guidance"] = settings.guidance
            result["conditional"] = label_agreement(features, probs, labels, test_features, test.labels)
            result["reference"]["conditional"] = label_agreement(
                train_features, train_probs, train_labels, test_features, test.labels
            )
    if write and run.run_dir is not None:
        out = output_dir(run.run_dir)  # a shipped pretrained run is not written to
        out.mkdir(parents=True, exist_ok=True)
        checkpoint.write_json(out / EVAL_FILE, result)
    return result


# ---- the readable table ---------------------------------------------------------------

def format_result(result: dict) -> str:
    """eval.json as a table a person can read."""
    lines = [f"{result['kind']} run {result['run']}", f"held-out: {result['heldout']['data']}"]
    held = result["heldout"]
    metrics = FAMILIES[result["kind"]].heldout_metrics if result["kind"] in FAMILIES else ()
    labels = {m.key: m.label for m in metrics if m.key in held}
    for key in [*labels, *(k for k in held if k not in labels and k != "data")]:
        lines.append(f"  {labels.get(key, key):<44} {held[key]:10.4f}")
    if "iwae" in result:
        w = result["iwae"]
        lines.append(
            f"  {'IWAE NLL bound (nats/image, k=' + str(w['k']) + ')':<44} {w['nll']:10.2f}"
            f"  +- {w['stderr']:.2f} over the first {w['images']:,} images ({w['seconds']} s)"
        )
    samples = result.get("samples")
    if samples:
        ref, test = result["reference"]["train_vs_test"], result["reference"]["test"]
        accuracy = result["classifier"]["heldout_accuracy"]
        accuracy = "no labels to score it" if accuracy is None else f"{accuracy:.2%}"
        lines.append(
            f"samples: {samples['n']:,} generated in {samples['seconds']} s ({samples['sampling']}); "
            f"classifier {result['classifier']['run']} ({accuracy} on held-out)"
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
        lines.append(f"samples: not measured (no classifier): {result.get('skipped', SAMPLE_FIGURES)}")
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
