"""Lesion AUC-PR at full resolution with G's raw maps outside the field of view and with them set to 0.

For each bundle, on validation fold 0's pixel-labelled IDRiD images (``--fold-of``: the run whose fold to use), the
pooled per-lesion AUC-PR over every pixel of the original images, as ``drcollab evaluate`` scores it, once with
G's raw outputs outside the FOV (``--outside-fov keep``) and once with them at 0 (the default), and G's mean
probability outside the FOV. Segmentation only (no grading), so it is quicker than two evaluations.

    DRCOLLAB_IDRID=../shared/data/IDRiD .venv/bin/python benchmarks/outside_fov.py \\
        release/drcollab-idrid-cpu runs/idrid/lesion_semi_new_1152 --fold-of runs/idrid/lesion_semi_new_1152
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from drcollab.constants import LESIONS
from drcollab.data.cache import PreprocessCache
from drcollab.data.io import load_masks
from drcollab.evaluation.metrics import LesionCurves
from drcollab.evaluation.selection import read_eval_set, restrict_to_val_fold
from drcollab.inference.predictor import Predictor
from drcollab.training.run_folder import read_val_fold


def score(bundle: Path, records: list, cache_dir: Path) -> str:
    """One markdown row: AUC-PR per lesion with keep / zero, and G's mean probability outside the FOV."""
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
    cells = []
    for curves in (keep, zero):
        ap = [r.average_precision for r in curves.results().values()]
        cells.append(" / ".join(f"{v:.3f}" for v in ap) + f" (mean {np.mean(ap):.3f})")
    mean_out = " / ".join(f"{v:.4f}" for v in np.mean(outside, axis=0))
    return f"| `{bundle}` | {cells[0]} | {cells[1]} | {mean_out} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundles", type=Path, nargs="+", help="run folders or bundles")
    parser.add_argument("--fold-of", type=Path, required=True, help="run whose validation fold to use")
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("DRCOLLAB_IDRID", "../shared/data/IDRiD")))
    parser.add_argument("--cache-dir", type=Path, default=Path(os.environ.get("DRCOLLAB_CACHE", "cache")))
    args = parser.parse_args()
    found = read_eval_set(args.data, "idrid", "train")
    records = restrict_to_val_fold(found, read_val_fold(args.fold_of)).segmentation
    lesions = "/".join(LESIONS)
    print(f"| bundle | AUC-PR {lesions}, raw outside the FOV (keep) | AUC-PR, 0 outside the FOV (zero) | "
          f"G's mean probability outside the FOV, {lesions} |\n|---|---|---|---|")
    for bundle in args.bundles:
        print(score(bundle, records, args.cache_dir), flush=True)


if __name__ == "__main__":
    main()
