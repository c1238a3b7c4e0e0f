"""Lesion segmentation at CPU budget: G's training recipe row by row, on validation fold 0 of the IDRiD training split.

Every row is stage 1a alone (``configs/cpu/ce2.yaml``, no grader) with the overrides listed in :data:`ROWS`, scored
by ``drcollab evaluate --val-fold-of`` at the original 4288x2848 resolution. Rows differ from ``new_1152`` (the new
recipe) by one thing each, so each change's share is visible; ``paper_384`` is the paper's recipe at today's CPU
size (uniform 192-px crops, constant lr 2e-4, PyTorch's head initialisation, BCE), and the ``budget_*`` rows are the
best recipe at other numbers of epochs, for the quality-against-compute figure.

    DRCOLLAB_IDRID=../shared/data/IDRiD .venv/bin/python benchmarks/bench_seg.py --out runs/bench_seg
    .venv/bin/python benchmarks/bench_seg.py --out runs/bench_seg --report   # table + figure from finished rows

Each run is an ordinary ``drcollab train`` / ``drcollab evaluate`` (printed in ``OUT/<row>.log``); finished rows are
reused and an interrupted one resumes, so the command can be re-run until every row is done. Writes
``OUT/results.json`` (metrics and minutes per row), ``OUT/results.md`` and, with ``--figure``, the budget plot.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
from pathlib import Path

from reproduce_idrid import sh  # the same printed, logged subprocess call (benchmarks/ is the script's folder)

DRCOLLAB = [sys.executable, "-m", "drcollab.cli"]
LESIONS = ("MA", "HE", "EX", "SE")
EPOCHS = 280  # ~10 minutes of stage 1a on the 2 cores (5 steps of 2 x 4 crops per epoch)

# The new recipe: G at its own resolution, crops centred on lesions or inside the FOV, head bias at the lesion
# prior, warm-up + cosine learning rate. Validation only after the last epoch (it costs ~18 s at 1152 px).
NEW = [
    "loss.mask_loss=bce", "loss.pos_weight=null",
    "seg_pretrain.augment.crop=256", "seg_pretrain.augment.lesion_crops=0.5", "seg_pretrain.augment.crop_centre=fov",
    "generator.head_prior=[0.01,0.01,0.01,0.01]", "seg_pretrain.lr=1e-3", "seg_pretrain.schedule=cosine",
    "seg_pretrain.warmup_steps=100", "runtime.validate_every=100000",
]


# The paper's recipe as configs/cpu ran it before: G at the grader's 384 px, uniform 192-px crops, PyTorch's head
# initialisation, constant lr 2e-4, BCE; 200 epochs. Every value is spelled out, so the row does not depend on
# what configs/cpu/base.yaml says today.
PAPER = [
    "data.seg_size=null", "seg_pretrain.augment.crop=192", "seg_pretrain.augment.lesion_crops=0",
    "seg_pretrain.augment.crop_centre=anywhere", "generator.head_prior=null", "seg_pretrain.lr=2e-4",
    "seg_pretrain.schedule=constant", "seg_pretrain.warmup_steps=0", "loss.mask_loss=bce", "loss.pos_weight=null",
    "seg_pretrain.epochs=200", "runtime.validate_every=100000",
]


def new(size: int, epochs: int = EPOCHS, *extra: str) -> list[str]:
    return [f"data.seg_size={size}", *NEW, f"seg_pretrain.epochs={epochs}", *extra]


ROWS: dict[str, tuple[str, list[str]]] = {
    "paper_384": ("the paper's recipe at 384 px (configs/cpu's G before this recipe)", PAPER),
    "new_768": ("new recipe, G at 768 px", new(768)),
    "new_1152": ("new recipe, G at 1152 px", new(1152)),
    "new_1536": ("new recipe, G at 1536 px", new(1536)),
    "new_1152_uniform": ("new recipe at 1152 px, uniform crops (no lesion-centred, anywhere)",
                         new(1152, EPOCHS, "seg_pretrain.augment.lesion_crops=0",
                             "seg_pretrain.augment.crop_centre=anywhere")),
    "new_1152_dice": ("new recipe at 1152 px, BCE + soft Dice", new(1152, EPOCHS, "loss.mask_loss=bce_dice")),
    "new_1152_posw": ("new recipe at 1152 px, BCE with positive weights (MA 10, HE 3, EX 3, SE 5)",
                      new(1152, EPOCHS, "loss.pos_weight=[10,3,3,5]")),
    "new_1152_prior_off": ("new recipe at 1152 px, PyTorch's head initialisation",
                           new(1152, EPOCHS, "generator.head_prior=null")),
}
for _epochs in (35, 70, 140, 560, 750):
    ROWS[f"budget_{_epochs}"] = (f"new recipe at 1152 px, {_epochs} epochs", new(1152, _epochs))


def stage_minutes(run: Path) -> float:
    """Minutes between the first and the last logged step of stage 1a (metrics.csv), i.e. training alone."""
    times = [float(r["time"]) for r in csv.DictReader((run / "metrics.csv").open()) if r["stage"] == "seg_pretrain"]
    return round((max(times) - min(times)) / 60, 2)


def run_row(out: Path, row: str, seed: int, idrid: str, extra: list[str]) -> dict:
    name = row if seed == 0 else f"{row}@seed{seed}"
    run, log, evaluation = out / name, out / f"{name}.log", out / "eval" / name
    timing_path = out / name / "bench_timing.json"
    if not (run / "model/bundle.json").is_file():
        resume = (run / "checkpoints/last.safetensors").is_file()
        cmd = [*DRCOLLAB, "train", "--resume", str(run)] if resume else [
            *DRCOLLAB, "train", "--config", "configs/cpu/ce2.yaml", "--out", str(run), "runtime.progress=false",
            f"seed={seed}", *ROWS[row][1], *extra]
        wall = sh(cmd, log)
        timing_path.write_text(json.dumps({"train_wall_s": round(wall, 1)}))
    if not (evaluation / "metrics.json").is_file():
        sh([*DRCOLLAB, "evaluate", "--checkpoint", str(run), "--data", idrid, "--split", "train", "--val-fold-of",
            str(run), "--out", str(evaluation), "--workers", "1", "--overlays", "0",
            "--cache-dir", os.environ.get("DRCOLLAB_CACHE", "cache")], log)
    return collect(out, name, row)


def collect(out: Path, name: str, row: str) -> dict:
    seg = json.loads((out / "eval" / name / "metrics.json").read_text())["segmentation"]
    timing_path = out / name / "bench_timing.json"
    timing = json.loads(timing_path.read_text()) if timing_path.is_file() else {}
    result = {"row": row, "run": name, "description": ROWS[row][0], "train_min": stage_minutes(out / name),
              "wall_min": round(timing.get("train_wall_s", float("nan")) / 60, 2)}
    for lesion in LESIONS:
        result[f"ap_{lesion}"] = seg[lesion]["auc_pr"]
        result[f"roc_{lesion}"] = seg[lesion]["auc_roc"]
    result["ap_mean"] = sum(result[f"ap_{lesion}"] for lesion in LESIONS) / len(LESIONS)
    return result


def table(results: list[dict]) -> str:
    head = ["row", "what changes", *(f"{k} AUC-PR" for k in LESIONS), "mean AUC-PR",
            *(f"{k} AUC-ROC" for k in LESIONS), "stage 1a (min)", "run wall (min)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (len(head) - 2)]
    for r in results:
        cells = [f"`{r['run']}`", r["description"], *(f"{r[f'ap_{k}']:.3f}" for k in LESIONS), f"{r['ap_mean']:.3f}",
                 *(f"{r[f'roc_{k}']:.3f}" for k in LESIONS), f"{r['train_min']:.1f}", f"{r['wall_min']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def medians(results: list[dict]) -> list[dict]:
    """One row per bench row: the median over its seeds of every number (``seeds`` says how many)."""
    groups: dict[str, list[dict]] = {}
    for r in results:
        groups.setdefault(r["row"], []).append(r)
    out = []
    for row, runs in groups.items():
        keys = [k for k in runs[0] if k.startswith(("ap_", "roc_")) or k in ("train_min", "wall_min")]
        med = {k: statistics.median(r[k] for r in runs) for k in keys}
        med["ap_mean"] = sum(med[f"ap_{lesion}"] for lesion in LESIONS) / len(LESIONS)
        out.append({"row": row, "run": row if len(runs) == 1 else f"{row} (median of {len(runs)})",
                    "description": runs[0]["description"], "seeds": len(runs), **med})
    return out


def merge(recorded: list[dict], new: list[dict]) -> list[dict]:
    """The recorded rows with this run's finished ones replacing (or joining) them, by run name, in order."""
    by_run = {r["run"]: r for r in recorded}
    by_run.update({r["run"]: r for r in new})
    return list(by_run.values())


def figure(results: list[dict], rows: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = sorted((r["train_min"], r) for r in results if r["row"] in rows)
    if not points:
        return
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    xs = [m for m, _ in points]
    ax.plot(xs, [r["ap_mean"] for _, r in points], "o-", color="k", label="mean")
    for lesion, colour in zip(LESIONS, ("m", "b", "y", "g"), strict=True):
        ax.plot(xs, [r[f"ap_{lesion}"] for _, r in points], ".--", color=colour, label=lesion, alpha=0.8)
    ax.set_xlabel("stage 1a training minutes on the 2 CPU cores")
    ax.set_ylabel("pixel AUC-PR, IDRiD fold 0 (4288x2848)")
    ax.set_title("G, new recipe at 1152 px: quality against compute")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench_seg"))
    parser.add_argument("--rows", nargs="+", default=None, choices=list(ROWS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--set", nargs="*", default=[], help="extra key=value overrides for every run")
    parser.add_argument("--report", action="store_true", help="only collect finished rows into the table")
    parser.add_argument("--recorded", type=Path, default=Path(__file__).parent / "results/bench_seg.json",
                        help="the committed results of earlier runs (each row's numbers as measured); finished rows "
                        "in OUT replace theirs, and the merged list is written back")
    parser.add_argument("--figure", type=Path, default=None, help="write the budget figure here")
    parser.add_argument("--figure-rows", nargs="+",
                        default=["budget_35", "budget_70", "budget_140", "new_1152", "budget_560", "budget_750"])
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for row in args.rows or list(ROWS):
        for seed in args.seeds:
            name = row if seed == 0 else f"{row}@seed{seed}"
            if args.report:
                if (args.out / "eval" / name / "metrics.json").is_file():
                    results.append(collect(args.out, name, row))
                continue
            if "DRCOLLAB_IDRID" not in os.environ:
                sys.exit("set DRCOLLAB_IDRID to the IDRiD root (the folder holding 'A. Segmentation')")
            results.append(run_row(args.out, row, seed, os.environ["DRCOLLAB_IDRID"], args.set))
            (args.out / "results.json").write_text(json.dumps(results, indent=1))
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    recorded = json.loads(args.recorded.read_text()) if args.recorded.is_file() else []
    merged = merge(recorded, results)
    args.recorded.write_text(json.dumps(merged, indent=1) + "\n")
    report = table(merged) + "\nMedians over seeds:\n\n" + table(medians(merged))
    (args.out / "results.md").write_text(report)
    print(report)
    if args.figure is not None:
        figure(medians(merged), args.figure_rows, args.figure)


if __name__ == "__main__":
    main()
