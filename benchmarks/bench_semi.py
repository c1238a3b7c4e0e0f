"""Does the collaborative stage help? Lesion AUC-PR of Pretrained vs Semi vs Semi+Adv on synthetic data.

The paper's setting in miniature: few images with lesion masks, many with grades only. For each
training seed, one run pre-trains G and the grader (stages 1a and 1b); then every row starts stage 2
from those same networks (``init.*``), so rows differ only in what the row changes. Each row's model
is evaluated on a separate, fully labelled synthetic test set at full resolution.

    .venv/bin/python benchmarks/bench_semi.py --out runs/bench_semi --seeds 0 1 2
    .venv/bin/python benchmarks/bench_semi.py --report   # the table from benchmarks/results/bench_semi.json

Writes each row's per-seed numbers (lesion AUC-PR, their mean, grading accuracy and kappa) and minutes to
``benchmarks/results/bench_semi.json`` and prints the Markdown table of medians over seeds with every seed's value.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from pathlib import Path

import results_io  # benchmarks/ is the script's folder

from drcollab.config import load_config
from drcollab.constants import LESIONS
from drcollab.demo import ensure_synthetic
from drcollab.evaluation.evaluate import evaluate
from drcollab.evaluation.selection import read_eval_set
from drcollab.training.config import TrainConfig
from drcollab.training.trainer import run_training

SEMI = ["joint.semi=true", "joint.adversarial=false"]
SEMI_ADV = ["joint.semi=true", "joint.adversarial=true"]
MASKS_INIT = ["grader.attention_init=masks"]
# drcollab's one stage-2 recipe, as configs/cpu/base.yaml sets it (docs/method.md, "Stage 2: one recipe").
RECIPE = ["joint.pseudo_mask=refined", "joint.zero_absent=true", *MASKS_INIT, "discriminator.sees_image=false"]
ROWS: dict[str, list[str]] = {
    "Pretrained": ["grader.mode=pretrained", "joint.train_generator=false", "joint.semi=false",
                   "joint.adversarial=false"],
    "Semi": SEMI,
    "Semi+Adv": SEMI_ADV,
    "Semi (attention init: masks)": [*SEMI, *MASKS_INIT],
    "Semi+Adv (attention init: masks)": [*SEMI_ADV, *MASKS_INIT],
    "Semi + zero absent": [*SEMI, "joint.zero_absent=true"],
    # The recipe, without and with D, and its control with the labels' zero targets alone (no pseudo masks).
    "recipe Semi": [*SEMI, *RECIPE],
    "recipe Semi+Adv": [*SEMI_ADV, *RECIPE],
    "recipe, labels only": [*SEMI, *RECIPE, "joint.pseudo_mask=labels"],
    # Controls (run with --rows): they start from the masks init, like the "Semi (attention init: masks)" row they
    # are compared with.
    "G on X^P only (no semi, no adv)": ["joint.semi=false", "joint.adversarial=false", *MASKS_INIT],
    "Semi, no grading loss into G": [*SEMI, "joint.grade_to_generator=false", *MASKS_INIT],
    "Semi, pseudo masks weighted 0.1": [*SEMI, "joint.semi_weight=0.1", *MASKS_INIT],
}
DEFAULT_ROWS = ["Pretrained", "Semi", "Semi+Adv", "recipe Semi", "recipe Semi+Adv"]


def run_row(config: Path, out: Path, seed: int, overrides: list[str], test_set, cache: Path) -> dict:
    cfg = load_config(TrainConfig, config, [f"seed={seed}", *overrides])
    run_dir = out / "run"
    t0 = time.perf_counter()
    if not (run_dir / "model/bundle.json").is_file():
        run_training(cfg, run_dir)
    seconds = time.perf_counter() - t0
    saved = out / "eval/metrics.json"
    if saved.is_file():  # a re-run reuses finished rows (delete a row's folder to redo it)
        return {"seconds": None, "metrics": json.loads(saved.read_text())}
    metrics = evaluate(run_dir / "model", test_set, out / "eval", overlays=0, cache_dir=cache, progress=False)
    return {"seconds": seconds, "metrics": metrics}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("configs/demo.yaml"))
    parser.add_argument("--out", type=Path, default=Path("runs/bench_semi"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rows", nargs="+", default=DEFAULT_ROWS, choices=list(ROWS))
    parser.add_argument("--n-train", type=int, default=160)
    parser.add_argument("--pixel-fraction", type=float, default=0.1)
    parser.add_argument("--set", nargs="*", default=[], help="extra key=value overrides for every run")
    results_io.add_arguments(parser, "bench_semi")
    args = parser.parse_args()
    if args.report:
        print(report(results_io.read(args.json)))
        return

    size = load_config(TrainConfig, args.config).data.preprocess.size
    data = args.out / "data"
    train = ensure_synthetic(data / "train", args.n_train, size, 0, args.pixel_fraction, 0.05)
    test = ensure_synthetic(data / "test", 40, size, 1000, 1.0, 0.0)
    test_set = read_eval_set(test, "generic")
    cache = args.out / "cache"
    source = f"[{{format: generic, root: '{train}'}}]"
    common = [f"data.pixel={source}", f"data.image={source}", f"data.cache_dir='{cache}'", "runtime.progress=false",
              *args.set]

    results: dict[str, dict[int, dict]] = {}
    for seed in args.seeds:
        pre = args.out / f"seed{seed}/pretrain"
        results.setdefault("Pretrained G (stage 1a)", {})[seed] = run_row(
            args.config, pre, seed, [*common, "joint.epochs=0"], test_set, cache)
        init = [f"init.generator='{pre / 'run/models/seg_pretrain/generator'}'",
                f"init.grader='{pre / 'run/models/grade_pretrain/grader'}'",
                "seg_pretrain.epochs=0", "grade_pretrain.epochs=0"]
        for row in args.rows:
            slug = re.sub(r"[^a-z0-9]+", "_", row.lower()).strip("_")
            results.setdefault(row, {})[seed] = run_row(
                args.config, args.out / f"seed{seed}/{slug}", seed, [*common, *init, *ROWS[row]], test_set, cache)
            print(f"seed {seed} {row}: {summary(results[row][seed]['metrics'])}", flush=True)
    rows = [{"row": row, "seconds": {str(s): r["seconds"] for s, r in per_seed.items()},
             "seeds": {str(s): numbers(r["metrics"]) for s, r in per_seed.items()}}
            for row, per_seed in results.items()]
    print(report(results_io.write(args.json, rows, settings=f"{args.config}, {args.n_train} training images, pixel "
                                  f"fraction {args.pixel_fraction}, 40 test images", overrides=args.set)))


def numbers(metrics: dict) -> dict:
    """What the table shows of one evaluation: AUC-PR per lesion and their mean, grading accuracy and kappa."""
    row = {lesion: metrics["segmentation"][lesion]["auc_pr"] for lesion in LESIONS}
    row["mean"] = statistics.mean(row[lesion] for lesion in LESIONS)
    grading = metrics.get("grading") or {}
    return {**row, "accuracy": grading.get("accuracy"), "kappa": grading.get("kappa")}


def summary(metrics: dict) -> str:
    seg = metrics.get("segmentation") or {}
    parts = [f"{k} {v['auc_pr']:.3f}" for k, v in seg.items() if v["auc_pr"] is not None]
    grading = metrics.get("grading")
    if grading:
        parts.append(f"kappa {grading['kappa']:.3f}" if grading["kappa"] is not None else "kappa n/a")
    return ", ".join(parts)


def report(data: dict) -> str:
    """Each row's median over seeds, then every seed's value in seed order."""
    keys = [*LESIONS, "mean", "accuracy", "kappa"]
    rows = []
    for r in data["rows"]:
        cells = [r["row"]]
        for key in keys:
            vs = [seed[key] for _, seed in sorted(r["seeds"].items(), key=lambda kv: int(kv[0]))
                  if seed[key] is not None]
            cells.append("n/a" if not vs else f"{statistics.median(vs):.3f} ({', '.join(f'{v:.3f}' for v in vs)})")
        rows.append(cells)
    head = ["row", *(f"{lesion} AUC-PR" for lesion in LESIONS), "mean AUC-PR", "accuracy", "kappa"]
    return results_io.markdown(head, rows, "l" * len(head))


if __name__ == "__main__":
    main()
