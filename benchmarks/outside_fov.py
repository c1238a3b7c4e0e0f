"""Lesion AUC-PR at full resolution with G's raw maps outside the field of view and with them set to 0.

For each bundle, on validation fold 0's pixel-labelled IDRiD images (``--fold-of``: the run whose fold to use), the
pooled per-lesion AUC-PR over every pixel of the original images, as ``drcollab evaluate`` scores it, once with
G's raw outputs outside the FOV (``--outside-fov keep``) and once with them at 0 (the default), and G's mean
probability outside the FOV. Segmentation only (no grading), so it is quicker than two evaluations. Writes
``benchmarks/results/outside_fov.json`` and prints its Markdown table; ``--report`` prints the table from that file,
measuring nothing.

    DRCOLLAB_IDRID=../shared/data/IDRiD .venv/bin/python benchmarks/outside_fov.py \\
        release/drcollab-idrid-cpu runs/idrid/lesion_semi_new_1152 --fold-of runs/idrid/lesion_semi_new_1152
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import results_io  # benchmarks/ is the script's folder

from drcollab.constants import LESIONS
from drcollab.data.cache import PreprocessCache
from drcollab.data.io import load_masks
from drcollab.evaluation.metrics import LesionCurves
from drcollab.evaluation.selection import read_eval_set, restrict_to_val_fold
from drcollab.inference.predictor import Predictor
from drcollab.training.run_folder import read_val_fold


def score(bundle: Path, records: list, cache_dir: Path) -> dict:
    """AUC-PR per lesion with keep / zero, and G's mean probability outside the FOV, per lesion."""
    predictor = Predictor(bundle, outside_fov="keep")
    cache = PreprocessCache(cache_dir, predictor.input_preprocess)
    keep, zero = LesionCurves(2**16), LesionCurves(2**16)  # evaluate's bins
    outside = []
    for record in records:
        pre = cache.get(record)
        maps = np.clip(pre.geometry.to_original(predictor.predict_preprocessed([pre])[0].lesion_probs), 0, 1)
        fov = pre.geometry.to_original(pre.fov[None].astype(np.float32))[0] > 0.5  # (H, W)
        masks = load_masks(record, pre.geometry.original_hw)
        keep.update(maps, masks)
        zero.update(maps * fov, masks)
        outside.append(maps[:, ~fov].mean(axis=1))
    row: dict = {"bundle": str(bundle)}
    for mode, curves in (("keep", keep), ("zero", zero)):
        row[mode] = {lesion: r.average_precision for lesion, r in curves.results().items()}
        row[f"{mode}_mean"] = float(np.mean(list(row[mode].values())))
    row["outside_mean"] = dict(zip(LESIONS, np.mean(outside, axis=0).tolist(), strict=True))
    return row


def report(data: dict) -> str:
    def aps(r: dict, mode: str) -> str:
        return " / ".join(f"{r[mode][k]:.3f}" for k in LESIONS) + f" (mean {r[f'{mode}_mean']:.3f})"

    lesions = "/".join(LESIONS)
    head = ["bundle", f"AUC-PR {lesions}, raw outside the FOV (keep)", "AUC-PR, 0 outside the FOV (zero)",
            f"G's mean probability outside the FOV, {lesions}"]
    rows = [[f"`{r['bundle']}`", aps(r, "keep"), aps(r, "zero"),
             " / ".join(f"{r['outside_mean'][k]:.4f}" for k in LESIONS)] for r in data["rows"]]
    return results_io.markdown(head, rows, "llll")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundles", type=Path, nargs="*", help="run folders or bundles")
    parser.add_argument("--fold-of", type=Path, help="run whose validation fold to use")
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("DRCOLLAB_IDRID", "../shared/data/IDRiD")))
    parser.add_argument("--cache-dir", type=Path, default=Path(os.environ.get("DRCOLLAB_CACHE", "cache")))
    results_io.add_arguments(parser, "outside_fov")
    args = parser.parse_args()
    if args.report:
        print(report(results_io.read(args.json)))
        return
    if not args.bundles or args.fold_of is None:
        parser.error("give the bundles to score and --fold-of (or --report)")
    found = read_eval_set(args.data, "idrid", "train")
    records = restrict_to_val_fold(found, read_val_fold(args.fold_of)).segmentation
    rows = [score(bundle, records, args.cache_dir) for bundle in args.bundles]
    print(report(results_io.write(args.json, rows, fold_of=str(args.fold_of))))


if __name__ == "__main__":
    main()
