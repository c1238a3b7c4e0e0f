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
import json
import statistics
from pathlib import Path

import rowbench

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


def run_row(out: Path, row: str, seed: int, idrid: str, extra: list[str]) -> dict:
    name = rowbench.run_name(row, seed)
    overrides = [f"seed={seed}", *ROWS[row][1], *extra]
    wall = rowbench.train_and_evaluate(out, name, "configs/cpu/ce2.yaml", overrides, idrid)
    if wall is not None:
        (out / name / "bench_timing.json").write_text(json.dumps({"train_wall_s": round(wall, 1)}))
    return collect(out, name, row)


def collect(out: Path, name: str, row: str) -> dict:
    seg = json.loads((out / "eval" / name / "metrics.json").read_text())["segmentation"]
    timing_path = out / name / "bench_timing.json"
    timing = json.loads(timing_path.read_text()) if timing_path.is_file() else {}
    result = {"row": row, "run": name, "description": ROWS[row][0],
              "train_min": rowbench.stage_minutes(out / name, "seg_pretrain"),
              "wall_min": round(timing.get("train_wall_s", float("nan")) / 60, 2),
              "quiet_min": rowbench.quiet_minutes(out / name, "seg_pretrain"),
              "steps": rowbench.stage_steps(out / name, "seg_pretrain")}
    for lesion in LESIONS:
        result[f"ap_{lesion}"] = seg[lesion]["auc_pr"]
        result[f"roc_{lesion}"] = seg[lesion]["auc_roc"]
    result["ap_mean"] = sum(result[f"ap_{lesion}"] for lesion in LESIONS) / len(LESIONS)
    return result


def _int(x: float | None) -> str:
    return "–" if x is None else f"{x:,.0f}"


def _minutes(x: float | None) -> str:
    return "–" if x is None else f"{x:.1f}"


def table(results: list[dict]) -> str:
    head = ["row", "what changes", *(f"{k} AUC-PR" for k in LESIONS), "mean AUC-PR",
            *(f"{k} AUC-ROC" for k in LESIONS), "steps", "stage 1a (min)",
            "stage 1a alone (min)", "run wall (min)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (len(head) - 2)]
    for r in results:
        cells = [f"`{r['run']}`", r["description"], *(f"{r[f'ap_{k}']:.3f}" for k in LESIONS), f"{r['ap_mean']:.3f}",
                 *(f"{r[f'roc_{k}']:.3f}" for k in LESIONS), _int(r.get("steps")),
                 f"{r['train_min']:.1f}", _minutes(r.get("quiet_min")), f"{r['wall_min']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def medians(results: list[dict]) -> list[dict]:
    """One row per bench row: the median over its seeds of every number, and the mean AUC-PR of those medians."""
    out = rowbench.medians(results, lambda r: [k for k in r if k.startswith(("ap_", "roc_")) and k != "ap_mean"]
                           + ["train_min", "quiet_min", "wall_min", "steps"])
    for med in out:
        med["ap_mean"] = sum(med[f"ap_{lesion}"] for lesion in LESIONS) / len(LESIONS)
    return out


def report(recorded: list[dict] | dict) -> str:
    """Every run, then the medians over seeds (the table BENCHMARKS.md shows)."""
    results = rowbench.rows_of(recorded)
    return table(results) + "\nMedians over seeds:\n\n" + table(medians(results))


def figure(results: list[dict], rows: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = sorted((r["steps"], r) for r in results if r["row"] in rows and r.get("steps"))
    if not points:
        return
    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=120)
    xs = [s for s, _ in points]
    ax.plot(xs, [r["ap_mean"] for _, r in points], "o-", color="k", label="mean")
    for lesion, colour in zip(LESIONS, ("m", "b", "y", "g"), strict=True):
        ax.plot(xs, [r[f"ap_{lesion}"] for _, r in points], ".--", color=colour, label=lesion, alpha=0.8)
    ax.set_xlabel("stage 1a optimisation steps (global batch 8 crops of 256 px)")
    rates = [r["quiet_min"] / r["steps"] for r in results if r.get("quiet_min") and r.get("steps")]
    if rates:  # minutes alone on the 2 cores, at the measured rate of runs with a quiet stretch
        rate = statistics.median(rates)
        top = ax.secondary_xaxis("top", functions=(lambda x: x * rate, lambda m: m / rate))
        top.set_xlabel(f"minutes alone on the 2 CPU cores ({rate * 60:.2f} s per step)")
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
    rowbench.add_arguments(parser, ROWS, "runs/bench_seg", Path(__file__).parent / "results/bench_seg.json")
    parser.add_argument("--figure", type=Path, default=None, help="write the budget figure here")
    parser.add_argument("--figure-rows", nargs="+",
                        default=["budget_35", "budget_70", "budget_140", "new_1152", "budget_560", "budget_750"])
    args = parser.parse_args()
    merged = rowbench.merge_recorded(args.recorded, rowbench.run_rows(args, ROWS, run_row, collect))
    text = report(merged)
    (args.out / "results.md").write_text(text)
    print(text)
    if args.figure is not None:
        figure(medians(merged), args.figure_rows, args.figure)


if __name__ == "__main__":
    main()
