"""bin/eval RUN_DIR: held-out likelihoods and sample quality of a run, into RUN_DIR/eval.json."""

from __future__ import annotations

import argparse
import json

from ..evaluation.evaluate import evaluate, format_result
from .flags import add_sampling_options, sampling_arguments


def setup_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bin/eval",
        description="Held-out likelihoods and sample quality of a trained run; writes RUN_DIR/eval.json.",
    )
    p.add_argument("run_dir", help="a run directory written by bin/train (ae, vae, ddpm or flow)")
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
    add_sampling_options(p)
    p.add_argument("--json", action="store_true", help="print eval.json instead of the table")
    return p


def main(argv: list[str]) -> int:
    args = setup_arg_parser().parse_args(argv)
    result = evaluate(
        args.run_dir, args.n_samples, seed=args.seed, iwae_k=args.iwae_k, iwae_images=args.iwae_images,
        heldout_images=args.heldout_images, knn_k=args.knn_k, classifier=args.classifier, data_dir=args.data_dir,
        **sampling_arguments(args),
    )
    print(json.dumps(result, indent=2) if args.json else format_result(result))
    return 0
