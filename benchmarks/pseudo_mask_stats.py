"""How good are stage 2's pseudo masks? Compare them with the ground truth on held-out pixel-labelled images.

For each run whose grader has attention (a Semi / Semi+Adv run) and each pixel-labelled image of a
run's validation fold, the pseudo masks of ``joint.semi`` are computed as in training: G's masks,
the grader's attention maps α, up-sampled bilinearly to the image (``gated``: times G's masks).
Per lesion, over the field of view at the preprocessed size, it prints the share of pixels that
are lesion, the mean pseudo-mask value (the share a BCE against it asks G to mark), AUC-PR of the
pseudo masks and of G's own masks against the ground truth (scikit-learn), and how alike the four
lesions' pseudo masks are (mean Pearson correlation between the lesion channels of one image).

    DRCOLLAB_IDRID=../shared/data/IDRiD .venv/bin/python benchmarks/pseudo_mask_stats.py \\
        --runs runs/idrid/lesion_semi --fold-of runs/idrid/lesion_semi
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import average_precision_score

from drcollab.config import load_config
from drcollab.constants import LESIONS
from drcollab.data.io import load_sample
from drcollab.data.preprocess import preprocess
from drcollab.data.transforms import image_to_tensor
from drcollab.evaluation.selection import read_eval_set, restrict_to_val_fold
from drcollab.inference.bundle import load_bundle
from drcollab.training.config import TrainConfig
from drcollab.training.steps import pseudo_masks


def stats(run: Path, records: list) -> list[str]:
    joint = load_config(TrainConfig, run / "config.yaml").joint
    bundle = load_bundle(run)
    truth: list[list[np.ndarray]] = [[] for _ in LESIONS]
    pseudo: list[list[np.ndarray]] = [[] for _ in LESIONS]
    own: list[list[np.ndarray]] = [[] for _ in LESIONS]
    corr = []
    for record in records:
        sample = load_sample(record)
        pre = preprocess(sample.image, sample.masks, bundle.preprocess)
        x = image_to_tensor(pre.image)[None]
        with torch.inference_mode():
            masks = torch.sigmoid(bundle.generator(x))
            up = pseudo_masks(bundle.grader(x, masks).attention, masks, joint.pseudo_mask, joint.pseudo_threshold)
        fov = pre.fov
        p = up[0].numpy()[:, fov]  # (L, n) inside the field of view
        corr.append(np.nanmean([np.corrcoef(p[i], p[j])[0, 1] for i in range(len(p)) for j in range(i + 1, len(p))]))
        for i in range(len(LESIONS)):
            truth[i].append(pre.masks[i][fov])
            pseudo[i].append(p[i])
            own[i].append(masks[0, i].numpy()[fov])
    lines = [f"### `{run}` ({joint.pseudo_mask} pseudo masks, {len(records)} images)", "",
             "| lesion | lesion pixels | mean pseudo mask | pseudo-mask AUC-PR | G's mask AUC-PR |",
             "|---|---:|---:|---:|---:|"]
    for i, lesion in enumerate(LESIONS):
        t, p, o = (np.concatenate(a[i]) for a in (truth, pseudo, own))
        lines.append(f"| {lesion} | {t.mean():.2%} | {p.mean():.2%} | {average_precision_score(t, p):.4f} | "
                     f"{average_precision_score(t, o):.4f} |")
    lines += ["", f"Mean correlation between the four lesions' pseudo masks of an image: {np.mean(corr):.2f}", ""]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, nargs="+", required=True, help="run folders (their model and config)")
    parser.add_argument("--fold-of", type=Path, required=True, help="run whose validation fold to use")
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("DRCOLLAB_IDRID", "../shared/data/IDRiD")))
    args = parser.parse_args()
    records = restrict_to_val_fold(read_eval_set(args.data, "idrid", "train"), args.fold_of).segmentation
    for run in args.runs:
        print("\n".join(stats(run, records)))


if __name__ == "__main__":
    main()
