"""The grader at CPU budget, option by option, on validation fold 0 of the IDRiD training split.

Every row is stage 1b alone (the plain grader, ``configs/cpu/ori.yaml`` with G's and the joint stage's epochs at 0)
with the overrides in :data:`ROWS`, scored by ``drcollab evaluate --val-fold-of`` on the 83 held-out images: DR
accuracy and quadratic kappa, DME accuracy, the joint DR + DME accuracy (IDRiD sub-challenge 2), the referable
AUC / sensitivity / specificity, and the training minutes (first to last logged step of stage 1b). ``base`` is the
paper's focal-loss grader at 384 px with a DME head; each other row changes one thing. ``lesion_stats`` joins G's
lesion statistics (docs/method.md, "Lesion statistics") from a G at 1152 px (``--generator``; by default the
release's G, the ``budget_750`` row of ``bench_seg.py``, so the row needs no G training first); its minutes
include G's pass over the grading images (also reported alone, ``precompute_min``). ``stats_ordinal`` is the
combination (lesion statistics with the ordinal head). A row of :data:`EVALUATE_ONLY` trains nothing: it evaluates
another row's model with extra ``drcollab evaluate`` arguments, and its training minutes are that row's.

    DRCOLLAB_IDRID=../shared/data/IDRiD .venv/bin/python benchmarks/bench_grade.py --out runs/bench_grade
    .venv/bin/python benchmarks/bench_grade.py --out runs/bench_grade --report

Finished rows are reused and an interrupted one resumes; results are merged into
``benchmarks/results/bench_grade.json`` (committed), so a later run adds rows without re-running these.
"""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path

import rowbench

STAGE_1B = ["seg_pretrain.epochs=0", "joint.epochs=0", "grader.dme=true", "runtime.validate_every=100000"]
GENERATOR = "release/drcollab-idrid-cpu/generator"  # the release's G: bench_seg.py's budget_750 row, 1152 px
AUG = ["grade_pretrain.augment.scale=[0.9,1.1]", "grade_pretrain.augment.brightness=0.2",
       "grade_pretrain.augment.contrast=0.2", "grade_pretrain.augment.saturation=0.1"]

ROWS: dict[str, tuple[str, list[str]]] = {
    "base": ("the paper's grader: focal loss, 384 px, resnet18 from scratch, 20 epochs, DME head", []),
    "no_dme": ("base without the DME head (DR alone)", ["grader.dme=false"]),
    "balanced": ("class-balanced sampling of the grades", ["data.balanced=true"]),
    "augment": ("colour jitter and zoom 0.9-1.1", AUG),
    "res_512": ("512-px images", ["data.preprocess.size=512"]),
    "res_768": ("768-px images", ["data.preprocess.size=768"]),
    "epochs_40": ("40 epochs", ["grade_pretrain.epochs=40"]),
    "ordinal": ("cumulative-logit ordinal head", ["grader.head=ordinal"]),
    "tta": ("base's model evaluated with horizontal-flip test-time augmentation (no training)", []),
    "lesion_stats": ("G's lesion statistics (area, count; macula disc + 4 quadrants) beside the pooled features",
                     ["grader.lesion_stats=true", "init.generator={generator}", "data.seg_size=1152"]),
    "stats_ordinal": ("the combination: lesion_stats with the ordinal head",
                      ["grader.lesion_stats=true", "init.generator={generator}", "data.seg_size=1152",
                       "grader.head=ordinal"]),
    "stats_ordinal_tta": ("stats_ordinal's model evaluated with horizontal-flip test-time augmentation", []),
}
# row -> (the row whose run it evaluates, extra `drcollab evaluate` arguments)
EVALUATE_ONLY: dict[str, tuple[str, list[str]]] = {"tta": ("base", ["--tta", "hflip"]),
                                                  "stats_ordinal_tta": ("stats_ordinal", ["--tta", "hflip"])}


def run_row(out: Path, row: str, seed: int, idrid: str, extra: list[str], generator: str = GENERATOR) -> dict:
    name = rowbench.run_name(row, seed)
    trained, evaluate_args = EVALUATE_ONLY.get(row, (row, []))
    overrides = [f"seed={seed}", *STAGE_1B, *(o.format(generator=generator) for o in ROWS[trained][1]), *extra]
    rowbench.train_and_evaluate(out, name, "configs/cpu/ori.yaml", overrides, idrid, evaluate_args,
                                rowbench.run_name(trained, seed))
    return collect(out, name, row)


def collect(out: Path, name: str, row: str) -> dict:
    m = json.loads((out / "eval" / name / "metrics.json").read_text())
    dme, joint, referable = m.get("dme") or {}, m.get("joint") or {}, m.get("referable") or {}
    # An evaluation-only row's minutes are those of the run it evaluates: "tta@seed1" -> "base@seed1".
    run = EVALUATE_ONLY[row][0] + name.removeprefix(row) if row in EVALUATE_ONLY else name
    return {"row": row, "run": name, "description": ROWS[row][0],
            "train_min": rowbench.stage_minutes(out / run, "grade_pretrain"),
            "precompute_min": rowbench.precompute_minutes(out / run),
            "accuracy": m["grading"]["accuracy"], "kappa": m["grading"]["kappa"],
            "dme_accuracy": dme.get("accuracy"), "joint_accuracy": joint.get("accuracy"),
            "referable_auc": referable.get("auc"), "referable_sensitivity": referable.get("sensitivity"),
            "referable_specificity": referable.get("specificity")}


NUMBERS = ("accuracy", "kappa", "dme_accuracy", "joint_accuracy", "referable_auc", "referable_sensitivity",
           "referable_specificity", "train_min", "precompute_min")


def table(results: list[dict]) -> str:
    head = ["row", "what changes", "DR accuracy", "kappa", "DME accuracy", "joint accuracy", "referable AUC",
            "referable sens.", "referable spec.", "stage 1b (min)", "of which G's pass (min)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (len(head) - 2)]
    for r in results:
        cells = ["–" if r.get(k) is None else (f"{r[k]:.1f}" if k.endswith("_min") else f"{r[k]:.3f}")
                 for k in NUMBERS]
        lines.append(f"| `{r['run']}` | {r['description']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def report(recorded: list[dict] | dict) -> str:
    """Every run, then the medians over seeds (the table BENCHMARKS.md shows)."""
    results = rowbench.rows_of(recorded)
    return table(results) + "\nMedians over seeds:\n\n" + table(rowbench.medians(results, lambda r: list(NUMBERS)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    rowbench.add_arguments(parser, ROWS, "runs/bench_grade", Path(__file__).parent / "results/bench_grade.json")
    parser.add_argument("--generator", default=GENERATOR, help="checkpoint stem of the G of the lesion_stats row "
                        "(trained at 1152 px on 256-px crops, as configs/cpu/ce2.yaml does)")
    args = parser.parse_args()
    rows = rowbench.run_rows(args, ROWS, partial(run_row, generator=args.generator), collect)
    merged = rowbench.merge_recorded(args.recorded, rows)
    text = report(merged)
    (args.out / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
