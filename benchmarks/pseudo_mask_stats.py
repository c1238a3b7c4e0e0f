"""How good are stage 2's pseudo masks, at its start and at its end? Compare them with the ground truth.

For each run whose grader has attention (a Semi / Semi+Adv run) and each pixel-labelled image of a run's
validation fold, the pseudo masks of ``joint.semi`` are computed as in training (``training/pseudo.py``, the
run's ``joint.pseudo_mask``, ``pseudo_threshold`` and ``zero_absent``, presence from the image's labels) twice:

- **start**: from the networks stage 2 began with, rebuilt by ``training/stages.py`` ``joint_start`` from the
  run's stage-1 checkpoints (``RUN/models/seg_pretrain``, ``grade_pretrain``) or its ``init.*``, seeded as the
  run was, so the attention model has the very random start the run had;
- **end**: from ``RUN/models/joint`` (G from the stage-1 checkpoint when stage 2 kept it frozen).

Per lesion, over the field of view at the preprocessed size: the share of pixels that are lesion, the mean
pseudo-mask value ("coverage": the share a BCE against it asks G to mark), AUC-PR of the pseudo masks and of G's
own masks against the ground truth (scikit-learn), and how alike the lesions' pseudo masks are (mean Pearson
correlation between the lesion channels of one image).

    DRCOLLAB_IDRID=../shared/data/IDRiD .venv/bin/python benchmarks/pseudo_mask_stats.py \\
        --runs runs/idrid/lesion_semi runs/idrid/lesion_semi_new --fold-of runs/idrid/lesion_semi
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import average_precision_score
from torch import nn

from drcollab.config import load_config
from drcollab.constants import LESIONS
from drcollab.data.io import load_sample
from drcollab.data.preprocess import preprocess
from drcollab.data.presence import lesion_presence
from drcollab.data.transforms import image_to_tensor
from drcollab.evaluation.selection import read_eval_set, restrict_to_val_fold
from drcollab.models import load_model
from drcollab.training.config import TrainConfig
from drcollab.training.pseudo import pseudo_targets
from drcollab.training.stages import joint_start, stage_seed


def _saved(run: Path, stage: str, kind: str) -> Path | None:
    path = run / "models" / stage / kind
    return path if path.with_suffix(".json").is_file() else None


def networks(run: Path, cfg: TrainConfig) -> dict[str, tuple[nn.Module, nn.Module]]:
    """``{"start": (G, grader), "end": (G, grader)}`` of the run's stage 2, in eval mode on the CPU."""
    torch.manual_seed(stage_seed(cfg, "joint"))
    start = joint_start(cfg, _saved(run, "seg_pretrain", "generator"), _saved(run, "grade_pretrain", "grader"))
    end_g = _saved(run, "joint", "generator")
    end = (load_model(end_g) if end_g else start[0], load_model(run / "models/joint/grader"))
    return {"start": tuple(m.eval() for m in start), "end": end}


def _mean_correlation(p: np.ndarray) -> float:
    """Mean Pearson correlation between the rows of ``p`` ``(L, n)`` that are not constant (NaN if < 2 are)."""
    varying = p[p.std(axis=1) > 0]
    if len(varying) < 2:
        return float("nan")
    c = np.corrcoef(varying)
    return float(c[np.triu_indices(len(varying), 1)].mean())


def measure(cfg: TrainConfig, generator: nn.Module, grader: nn.Module, records: list) -> dict[str, list]:
    """Per lesion, inside the FOV of every image: ground truth, pseudo masks, G's masks; and the correlations."""
    out: dict[str, list] = {"truth": [[] for _ in LESIONS], "pseudo": [[] for _ in LESIONS],
                            "own": [[] for _ in LESIONS], "corr": []}
    for record in records:
        sample = load_sample(record)
        pre = preprocess(sample.image, sample.masks, cfg.data.preprocess)
        x = image_to_tensor(pre.image)[None]  # (1, 3, S, S)
        fov = torch.from_numpy(pre.fov)[None, None]  # (1, 1, S, S)
        presence = torch.tensor([lesion_presence(record, cfg.data.presence)])  # (1, L)
        with torch.inference_mode():
            masks = torch.sigmoid(generator(x))  # (1, L, S, S)
            target, _ = pseudo_targets(grader(x, masks).attention, masks, fov, presence, cfg.joint)
        p = target[0].numpy()[:, pre.fov]  # (L, n) inside the field of view
        out["corr"].append(_mean_correlation(p))
        for i in range(len(LESIONS)):
            out["truth"][i].append(pre.masks[i][pre.fov])
            out["pseudo"][i].append(p[i])
            out["own"][i].append(masks[0, i].numpy()[pre.fov])
    return out


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def stats(run: Path, records: list) -> list[str]:
    cfg = load_config(TrainConfig, run / "config.yaml")
    j = cfg.joint
    found = {when: measure(cfg, g, c, records) for when, (g, c) in networks(run, cfg).items()}
    lines = [f"### `{run}` ({j.pseudo_mask} pseudo masks, zero_absent {j.zero_absent}, {len(records)} images)", "",
             "| lesion | lesion pixels | coverage start → end | pseudo-mask AUC-PR start → end | "
             "G's mask AUC-PR start → end |", "|---|---:|---:|---:|---:|"]
    for i, lesion in enumerate(LESIONS):
        t = np.concatenate(found["start"]["truth"][i])
        cells = {key: [np.concatenate(found[w][key][i]) for w in ("start", "end")] for key in ("pseudo", "own")}
        cover = " → ".join(f"{p.mean():.2%}" for p in cells["pseudo"])
        ap = {key: " → ".join(f"{average_precision_score(t, v):.4f}" for v in cells[key]) for key in cells}
        lines.append(f"| {lesion} | {t.mean():.2%} | {cover} | {ap['pseudo']} | {ap['own']} |")
    corr = " → ".join(f"{_nanmean(found[w]['corr']):.2f}" for w in ("start", "end"))
    lines += ["", f"Mean correlation between the lesions' pseudo masks of an image, start → end: {corr}", ""]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, nargs="+", required=True, help="run folders (their models and config)")
    parser.add_argument("--fold-of", type=Path, required=True, help="run whose validation fold to use")
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("DRCOLLAB_IDRID", "../shared/data/IDRiD")))
    args = parser.parse_args()
    records = restrict_to_val_fold(read_eval_set(args.data, "idrid", "train"), args.fold_of).segmentation
    for run in args.runs:
        print("\n".join(stats(run, records)))


if __name__ == "__main__":
    main()
