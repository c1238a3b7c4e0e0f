"""How much lesion does G find on the pixel-labelled images and on the grade-only ones, grade by grade?

D's two branches in stage 2 are G's masks of X^P (real) and of X^I (fake). If the two sets differ in how much
lesion they hold, D can tell them apart by the amount alone, and its term pays G to paint lesions on X^I, which
is not the mask quality Eq. 3 means to judge (a grade-matched D was measured against it and removed,
docs/history.md). This measures the amount: for a run's
training images (its folds) at the grader's size, from the preprocessing cache, per lesion the mean share of the
field of view that G marks (mask >= 0.5), for X^P (beside its ground truth's share) and for X^I by DR grade.

    DRCOLLAB_IDRID=../shared/data/IDRiD DRCOLLAB_CACHE=cache .venv/bin/python benchmarks/lesion_burden.py \\
        --run runs/idrid/pretrain
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from drcollab.config import load_config
from drcollab.constants import LESIONS
from drcollab.data.transforms import image_to_tensor
from drcollab.models import load_model
from drcollab.training.config import TrainConfig
from drcollab.training.data import build_data

THRESHOLD = 0.5


def shares(generator: torch.nn.Module, cache, records: list, batch: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Per image, per lesion: G's marked share of the FOV and the ground truth's (NaN without masks), ``(N, L)``."""
    found, truth = [], []
    for start in range(0, len(records), batch):
        entries = [cache.get(r) for r in records[start : start + batch]]
        x = torch.stack([image_to_tensor(e.image) for e in entries])  # (B, 3, S, S)
        with torch.inference_mode():
            marked = torch.sigmoid(generator(x)).numpy() >= THRESHOLD  # (B, L, S, S)
        for e, m in zip(entries, marked, strict=True):
            n = max(int(e.fov.sum()), 1)
            found.append(m[:, e.fov].sum(-1) / n)
            has = e.masks is not None
            truth.append(e.masks[:, e.fov].sum(-1) / n if has else np.full(len(LESIONS), np.nan))
    return np.array(found), np.array(truth)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a run whose stage-1a G (or --generator) to use")
    parser.add_argument("--generator", type=Path, default=None, help="a saved G (default: RUN/models/seg_pretrain)")
    args = parser.parse_args()
    cfg = load_config(TrainConfig, args.run / "config.yaml")
    generator = load_model(args.generator or args.run / "models/seg_pretrain/generator").eval()
    data = build_data(cfg.data)
    head = "| images | n | " + " | ".join(f"{lesion} G (truth)" for lesion in LESIONS) + " |"
    lines = [f"G marked share of the FOV (mask >= {THRESHOLD}), mean per image, training folds of `{args.run}`", "",
             head, "|---|---:|" + "---:|" * len(LESIONS)]
    found, truth = shares(generator, data.seg_cache, data.pixel_train)
    cells = [f"{f:.2%} ({t:.2%})" for f, t in zip(found.mean(0), truth.mean(0), strict=True)]
    lines.append(f"| X^P (pixel-labelled) | {len(found)} | " + " | ".join(cells) + " |")
    by_grade: dict[int, list] = defaultdict(list)
    for record in data.image_train:
        by_grade[record.grade].append(record)
    for grade in sorted(g for g in by_grade if g is not None):
        found, _ = shares(generator, data.cache, by_grade[grade])
        lines.append(f"| X^I grade {grade} | {len(found)} | " + " | ".join(f"{f:.2%}" for f in found.mean(0)) + " |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
