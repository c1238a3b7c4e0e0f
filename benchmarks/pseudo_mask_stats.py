"""How good are stage 2's pseudo masks, at its start and at its end? Compare them with the ground truth.

For each run whose grader has attention (a Semi / Semi+Adv run) and each pixel-labelled image of a run's
validation fold, the pseudo masks of ``joint.semi`` are computed as in training (``training/pseudo.py``, the
run's ``joint.pseudo_mask`` and ``zero_absent``, presence from the image's labels) twice:

- **start**: from the networks stage 2 began with, rebuilt by ``training/stages.py`` ``joint_start`` from the
  run's stage-1 checkpoints (``RUN/models/seg_pretrain``, ``grade_pretrain``) or its ``init.*``, seeded as the
  run was, so the attention model has the very random start the run had;
- **end**: from ``RUN/models/joint`` (G from the stage-1 checkpoint when stage 2 kept it frozen).

Per lesion, over the field of view at the preprocessed size: the share of pixels that are lesion, the mean
pseudo-mask value ("coverage": the share a BCE against it asks G to mark), AUC-PR of the pseudo masks and of G's
own masks against the ground truth (scikit-learn; a run with G at its own size, ``training/views.py``, at G's
size, with the teacher's α sampled at its pixels), and how alike the lesions' pseudo masks are (mean Pearson
correlation between the lesion channels of one image).

    DRCOLLAB_IDRID=../shared/data/IDRiD .venv/bin/python benchmarks/pseudo_mask_stats.py \\
        --runs runs/idrid/lesion_semi runs/idrid/recipe --fold-of runs/idrid/lesion_semi

On another set, e.g. ``bench_semi.py``'s synthetic test set (every image): ``--data runs/bench_semi/data/test
--format generic --runs runs/bench_semi/seed0/semi/run``.
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
from drcollab.models.mask_path import grader_inputs
from drcollab.training.config import TrainConfig
from drcollab.training.mask_inputs import generator_tiles, grader_factor
from drcollab.training.pseudo import alpha_in_crops, pseudo_targets
from drcollab.training.run_folder import read_val_fold
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


def _two_size_targets(cfg: TrainConfig, generator: nn.Module, grader: nn.Module, start_g: nn.Module,
                      sample, presence: torch.Tensor) -> tuple:
    """G at its own size (``training/views.py``): the teacher's α from the start G's pooled masks, sampled at
    every pixel of G's size, against G's own tiled masks there. Returns (preprocessed at G's size, targets, masks)."""
    seg = preprocess(sample.image, sample.masks, cfg.data.seg_preprocess)
    small = preprocess(sample.image, None, cfg.data.preprocess)
    xs, x = image_to_tensor(seg.image)[None], image_to_tensor(small.image)[None]  # (1, 3, S, S), (1, 3, s, s)
    tile, overlap = generator_tiles(cfg)
    k = grader_factor(cfg)
    start_in = grader_inputs(start_g, xs, k, tile, overlap, stats=cfg.grader.lesion_stats)
    masks = start_in.full if generator is start_g else grader_inputs(generator, xs, k, tile, overlap).full
    alpha = grader(x, start_in.masks, start_in.stats).attention  # (1, L, h, w)
    side = xs.shape[-1]
    alpha = alpha_in_crops(alpha, torch.tensor([[0.0, 0.0, 1.0]]), torch.zeros(1, 2), side)  # (1, L, S, S)
    fov = torch.from_numpy(seg.fov)[None, None]
    target, _ = pseudo_targets(alpha, masks, fov, presence, cfg.joint)
    return seg, target, masks


def measure(cfg: TrainConfig, generator: nn.Module, grader: nn.Module, records: list,
            start_g: nn.Module | None = None) -> dict[str, list]:
    """Per lesion, inside the FOV of every image: ground truth, pseudo masks, G's masks; and the correlations.

    With G at its own size (``cfg.two_size_joint``) at G's size, the grader fed ``start_g``'s masks."""
    out: dict[str, list] = {"truth": [[] for _ in LESIONS], "pseudo": [[] for _ in LESIONS],
                            "own": [[] for _ in LESIONS], "corr": []}
    for record in records:
        sample = load_sample(record)
        presence = torch.tensor([lesion_presence(record, cfg.data.presence)])  # (1, L)
        with torch.inference_mode():
            if cfg.two_size_joint:
                pre, target, masks = _two_size_targets(cfg, generator, grader, start_g, sample, presence)
            else:
                pre = preprocess(sample.image, sample.masks, cfg.data.preprocess)
                x = image_to_tensor(pre.image)[None]  # (1, 3, S, S)
                fov = torch.from_numpy(pre.fov)[None, None]  # (1, 1, S, S)
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
    nets = networks(run, cfg)
    found = {when: measure(cfg, g, c, records, nets["start"][0]) for when, (g, c) in nets.items()}
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
    parser.add_argument("--fold-of", type=Path, help="run whose validation fold to use (default: every image)")
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("DRCOLLAB_IDRID", "../shared/data/IDRiD")))
    parser.add_argument("--format", default="idrid", help="dataset layout of --data (e.g. generic: a synthetic set)")
    parser.add_argument("--split", default="train", help="official split of --data, where it has several")
    args = parser.parse_args()
    found = read_eval_set(args.data, args.format, args.split)
    if args.fold_of is not None:
        found = restrict_to_val_fold(found, read_val_fold(args.fold_of))
    records = found.segmentation
    for run in args.runs:
        print("\n".join(stats(run, records)))


if __name__ == "__main__":
    main()
