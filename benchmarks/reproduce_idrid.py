"""Reproduce the ablation rows of Tables 1 and 3 on a validation fold of the IDRiD training split.

Runs the ``configs/cpu/`` (or ``configs/paper/``) rows and evaluates each on the fold its run held
out (``drcollab evaluate --val-fold-of``), then merges them (``drcollab compare``). To spend the
budget on what differs between rows, the rows share their pre-training: one run trains stages 1a
and 1b (``pretrain``: its grader, and its G at the grader's 384 px, start every Table 1 row), and the
Table 1 rows start stage 2 from it with ``init.generator`` / ``init.grader``; CE1 and CE2 pre-train their own G
at its own 1152 px (``configs/cpu/ce1.yaml``, ``ce2.yaml``). The ``_1152`` rows run stage 2 with G at its own
1152 px (``training/views.py``) from the release's G and grader. Every run is an ordinary ``drcollab train``
command, printed before it starts.

    DRCOLLAB_IDRID=../shared/data/IDRiD .venv/bin/python benchmarks/reproduce_idrid.py --family cpu --out runs/idrid
    .venv/bin/python benchmarks/reproduce_idrid.py --report   # the tables from benchmarks/results/reproduce_idrid.json

Writes ``OUT/<row>/`` (run folders), ``OUT/eval/<row>/`` (reports), ``OUT/compare/`` (tables and PR
curves) and ``OUT/timings.json`` (wall time of every run and stage), and merges every evaluated row's numbers into
``benchmarks/results/reproduce_idrid.json`` (a row run again replaces its entry), whose tables it prints: Table 3
and Table 1 of the paper beside ours, and every stage-2 row on its start.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import results_io  # benchmarks/ is the script's folder
from results_io import MISSING, markdown, number

from drcollab.constants import LESIONS
from drcollab.evaluation.report import load_paper

DRCOLLAB = [sys.executable, "-m", "drcollab.cli"]
SKIP_PRETRAIN = ["seg_pretrain.epochs=0", "grade_pretrain.epochs=0"]

RELEASE = Path(__file__).resolve().parent.parent / "release/drcollab-idrid-cpu"
RELEASE_INIT = [f"init.generator={RELEASE / 'generator'}", f"init.grader={RELEASE / 'grader'}"]


def rows(out: Path) -> dict[str, tuple[str, list[str]]]:
    """Row -> (config file, overrides). ``pretrain`` first: the others start from its networks."""
    pre = out / "pretrain/models"
    init = [f"init.generator={pre / 'seg_pretrain/generator'}", f"init.grader={pre / 'grade_pretrain/grader'}"]
    return {
        "pretrain": ("lesion_pretrained.yaml", ["name=pretrain", "joint.epochs=0"]),
        "ce1": ("ce1.yaml", []),
        # Table 3's CE2: G at its own 1152 px (ce2.yaml); pretrain's G, at the grader's 384 px, starts stage 2.
        "ce2": ("ce2.yaml", []),
        "ori": ("ori.yaml", [*SKIP_PRETRAIN, f"init.grader={pre / 'grade_pretrain/grader'}"]),
        "lesion_pretrained": ("lesion_pretrained.yaml", [*SKIP_PRETRAIN, *init]),
        "lesion_semi": ("lesion_semi.yaml", [*SKIP_PRETRAIN, *init]),
        "lesion_semi_adv": ("lesion_semi_adv.yaml", [*SKIP_PRETRAIN, *init]),
        # The paper's Semi with zero targets where the labels rule a lesion out (run with --rows).
        "lesion_semi_zero_absent": ("lesion_semi.yaml", [*SKIP_PRETRAIN, *init, "name=lesion_semi_zero_absent",
                                                         "joint.zero_absent=true"]),
        # drcollab's one stage-2 recipe (configs/cpu/base.yaml; run with --rows), with a D, and the control with the
        # labels' zero targets alone (no pseudo masks: what the labels alone give G).
        "lesion_recipe": ("lesion_recipe.yaml", [*SKIP_PRETRAIN, *init]),
        "lesion_recipe_adv": ("lesion_recipe_adv.yaml", [*SKIP_PRETRAIN, *init]),
        "lesion_recipe_labels": ("lesion_recipe.yaml", [*SKIP_PRETRAIN, *init, "name=lesion_recipe_labels",
                                                        "joint.pseudo_mask=labels"]),
        # The recipe with G at its own 1152 px in stage 2 (training/views.py), starting from the release's G and
        # grader (run with --rows), and its control without any loss on X^I for G (G goes on with X^P crops alone).
        "lesion_recipe_1152": ("lesion_recipe_1152.yaml", [*SKIP_PRETRAIN, *RELEASE_INIT]),
        "lesion_recipe_xp_only_1152": ("lesion_recipe_1152.yaml", [*SKIP_PRETRAIN, *RELEASE_INIT,
                                                                   "name=lesion_recipe_xp_only_1152",
                                                                   "joint.semi=false", "joint.adversarial=false"]),
    }


PAPER_ROWS = ["pretrain", "ce1", "ce2", "ori", "lesion_pretrained", "lesion_semi", "lesion_semi_adv"]
DESCRIPTIONS = {
    "pretrain": "stages 1a and 1b: G at 384 px, the plain grader",
    "ce1": "stage 1a alone: the conv G at 1152 px",
    "ce2": "stage 1a alone: the Xception G at 1152 px",
    "ori": "the plain grader, 6 more epochs",
    "lesion_pretrained": "the grader weights its features with the frozen G's masks",
    "lesion_semi": "the paper's Semi: alpha as G's pseudo masks",
    "lesion_semi_adv": "the paper's Semi+Adv: Semi and D",
    "lesion_semi_zero_absent": "the paper's Semi + zero targets where the labels rule a lesion out",
    "lesion_recipe": "the recipe: refined pseudo masks, zero targets, alpha from G's masks, no D",
    "lesion_recipe_adv": "the recipe and a D on the masks",
    "lesion_recipe_labels": "control: the recipe with the labels' zero targets alone, no pseudo masks",
    "lesion_recipe_1152": "the recipe, G at its own 1152 px",
    "lesion_recipe_xp_only_1152": "control: the recipe's G at 1152 px on X^P crops alone",
}
# Table 3 of the paper (its method name in evaluation/paper_results.json) -> our runs of that row; Table 1 likewise.
# Rows named here but not in rows() are history: measured with stage-2 switches since removed (docs/history.md),
# their numbers stay in the results file and its tables.
TABLE3 = {"CE1(Conv)": ["ce1"], "CE2(Xception)": ["pretrain"],
          "CE2+Semi": ["lesion_semi", "lesion_semi_new", "lesion_recipe"],
          "CE2+Semi+Adv": ["lesion_semi_adv", "lesion_semi_adv_new_maskd", "lesion_recipe_adv"]}
TABLE1 = {"": ["pretrain"], "Ori": ["ori"], "Lesion(Pretrained)": ["lesion_pretrained"],
          "Lesion(Semi)": ["lesion_semi", "lesion_semi_new", "lesion_semi_new_attmasks", "lesion_recipe"],
          "Lesion(Semi+Adv)": ["lesion_semi_adv", "lesion_semi_adv_new_maskd", "lesion_recipe_adv"]}
STAGE2 = ["pretrain", "ori", "lesion_pretrained", "lesion_semi", "lesion_semi_presence", "lesion_semi_zero_absent",
          "lesion_semi_refined", "lesion_semi_alpha_masks", "lesion_semi_labels", "xp_only", "lesion_semi_new",
          "lesion_semi_new_attmasks", "lesion_semi_adv", "lesion_semi_adv_matched", "lesion_semi_adv_new",
          "lesion_semi_adv_new_maskd", "lesion_semi_gated", "xp_only_1152", "lesion_semi_new_1152",
          "lesion_semi_adv_new_1152", "lesion_recipe", "lesion_recipe_adv", "lesion_recipe_labels",
          "lesion_recipe_xp_only_1152", "lesion_recipe_1152"]


def sh(cmd: list[str], log: Path) -> float:
    print("$ " + " ".join(shlex.quote(str(c)) for c in cmd), flush=True)
    start = time.perf_counter()
    with log.open("a") as f:
        subprocess.run(cmd, check=True, stdout=f, stderr=subprocess.STDOUT)
    return time.perf_counter() - start


def stage_times(run: Path) -> dict[str, float]:
    """Seconds between the first and last log line of each stage (metrics.csv)."""
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    with (run / "metrics.csv").open() as f:
        for r in csv.DictReader(f):
            first.setdefault(r["stage"], float(r["time"]))
            last[r["stage"]] = float(r["time"])
    return {s: round(last[s] - first[s], 1) for s in first}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=["cpu", "paper"], default="cpu")
    parser.add_argument("--out", type=Path, default=Path("runs/idrid"))
    parser.add_argument("--rows", nargs="+", default=None, choices=list(rows(Path("."))),
                        help="rows to run (default: the paper's rows)")
    parser.add_argument("--set", nargs="*", default=[], help="extra key=value overrides for every run")
    results_io.add_arguments(parser, "reproduce_idrid")
    args = parser.parse_args()
    if results_io.printed_report(args, report):
        return
    idrid = results_io.idrid_root()
    args.out.mkdir(parents=True, exist_ok=True)
    timings_path = args.out / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
    table = rows(args.out)
    for row in args.rows or PAPER_ROWS:
        config, overrides = table[row]
        run = args.out / row
        log = args.out / f"{row}.log"
        if not (run / "model/bundle.json").is_file():
            resume = (run / "checkpoints/last.safetensors").is_file()
            cmd = [*DRCOLLAB, "train", "--resume", str(run)] if resume else [
                *DRCOLLAB, "train", "--config", f"configs/{args.family}/{config}", "--out", str(run),
                "runtime.progress=false", *overrides, *args.set]
            seconds = sh(cmd, log)
            timings[row] = {"train_s": round(seconds, 1), "stages_s": stage_times(run)}
        evaluation = args.out / "eval" / row
        if not (evaluation / "metrics.json").is_file():
            seconds = sh([*DRCOLLAB, "evaluate", "--checkpoint", str(run), "--data", idrid, "--split", "train",
                          "--val-fold-of", str(run), "--out", str(evaluation), "--workers", "1",
                          "--cache-dir", os.environ.get("DRCOLLAB_CACHE", "cache")], log)
            timings.setdefault(row, {})["evaluate_s"] = round(seconds, 1)
        timings_path.write_text(json.dumps(timings, indent=1))
    done = [r for r in table if (args.out / "eval" / r / "metrics.json").is_file()]
    sh([*DRCOLLAB, "compare", *[str(args.out / "eval" / r) for r in done], "--out", str(args.out / "compare"),
        "--labels", ",".join(done)], args.out / "compare.log")
    collected = [collect(args.out, r, timings.get(r, {})) for r in done]
    recorded = results_io.read(args.json) if args.json.is_file() else {"rows": []}
    merged = {r["row"]: r for r in recorded["rows"]} | {r["row"]: r for r in collected}
    data = results_io.write(args.json, list(merged.values()),
                            **{k: v for k, v in recorded.items() if k not in ("command", "machine", "rows")})
    print(report(data))
    print(f"tables: {args.out / 'compare/compare.md'}; timings: {timings_path}; results: {args.json}")


def collect(out: Path, row: str, timing: dict) -> dict:
    """One row of the results file from its evaluation (``OUT/eval/ROW/metrics.json``) and its timings."""
    m = json.loads((out / "eval" / row / "metrics.json").read_text())
    seg = m.get("segmentation") or {}
    aps = [v["auc_pr"] for v in seg.values() if v.get("auc_pr") is not None]

    def get(part: str, key: str) -> float | None:
        return (m.get(part) or {}).get(key)

    return {"row": row, "description": DESCRIPTIONS[row],
            "seg": {k: {"auc_roc": v.get("auc_roc"), "auc_pr": v.get("auc_pr")} for k, v in seg.items()},
            "mean_auc_pr": sum(aps) / len(aps) if len(aps) == len(LESIONS) else None,
            "accuracy": get("grading", "accuracy"), "kappa": get("grading", "kappa"),
            "dme_accuracy": get("dme", "accuracy"), "joint_accuracy": get("joint", "accuracy"),
            "referable_auc": get("referable", "auc"),
            "train_min": round(timing["train_s"] / 60, 1) if "train_s" in timing else None, "shared_cores": False,
            "eval_min": round(timing["evaluate_s"] / 60, 1) if "evaluate_s" in timing else None,
            "outside_fov": (m.get("settings") or {}).get("outside_fov") if seg else None}



def report(data: dict) -> str:
    """Table 3 and Table 1 of the paper beside our rows, then every stage-2 row on its start."""
    rows = {r["row"]: r for r in data["rows"]}
    return "\n".join([table3(rows), table1(rows), stage2_table(rows)])


def _seg(r: dict, lesion: str, key: str) -> float | None:
    return (r.get("seg", {}).get(lesion) or {}).get(key)


def table3(rows: dict[str, dict]) -> str:
    entries = [e for e in load_paper()["entries"] if e["table"] == "Table 3" and e["dataset"] == "IDRiD"]
    paper = {e["method"]: e["segmentation"] for e in entries}
    head = ["row", "run", *(f"{k} {m}" for k in LESIONS for m in ("AUC-ROC", "AUC-PR")), "mean AUC-PR"]
    lines = []
    for method, runs in TABLE3.items():
        seg = paper[method]
        lines.append([f"{method}, paper (IDRiD test split)", MISSING,
                      *(f"{seg[k][m]:.4f}" for k in LESIONS for m in ("auc_roc", "auc_pr")),
                      f"{sum(seg[k]['auc_pr'] for k in LESIONS) / len(LESIONS):.4f}"])
        lines += [[f"{method}, ours", f"`{run}`", *(number(_seg(rows[run], k, m)) for k in LESIONS
                                                    for m in ("auc_roc", "auc_pr")), number(rows[run]["mean_auc_pr"])]
                  for run in runs if run in rows]
    best = {k: max(e["segmentation"][k]["auc_pr"] for e in entries if "challenge" in e.get("note", "")
                   and k in e["segmentation"]) for k in LESIONS}
    lines.append(["IDRiD challenge, best entry per lesion (test split)", MISSING,
                  *(c for k in LESIONS for c in (MISSING, f"{best[k]:.4f}")), MISSING])
    return markdown(head, lines, "ll" + "r" * (len(head) - 2))


def table1(rows: dict[str, dict]) -> str:
    paper = {e["method"]: e["grading"] for e in load_paper()["entries"]
             if e["table"] == "Table 1" and e["dataset"] == "IDRiD"}
    head = ["row", "paper accuracy", "paper kappa", "run", "DR accuracy", "kappa", "DME accuracy", "joint accuracy",
            "referable AUC"]
    lines = []
    for method, runs in TABLE1.items():
        name, p = (method, paper[method]) if method else ("stage 1 alone (the grader after stage 1b)", {})
        lines += [[name, number(p.get("accuracy"), ".4f"), number(p.get("kappa"), ".4f"), f"`{run}`",
                   *(number(rows[run][k]) for k in ("accuracy", "kappa", "dme_accuracy", "joint_accuracy",
                                                    "referable_auc"))] for run in runs if run in rows]
    return markdown(head, lines, "lrrl" + "r" * 5)


def stage2_table(rows: dict[str, dict]) -> str:
    head = ["run", "what it changes", "start", *LESIONS, "mean AUC-PR", "DR accuracy", "kappa", "training (min)"]
    lines = []
    for run in (run for run in STAGE2 if run in rows):
        r = rows[run]
        start = MISSING if run == "pretrain" else "release" if run.endswith("_1152") else "pretrain"
        lines.append([f"`{run}`", r["description"], start, *(number(_seg(r, k, "auc_pr")) for k in LESIONS),
                      number(r["mean_auc_pr"]), number(r["accuracy"]), number(r["kappa"]),
                      number(r["train_min"], ".1f", "*" if r["shared_cores"] else "")])
    return markdown(head, lines, "lll" + "r" * (len(head) - 3))


if __name__ == "__main__":
    main()
