"""Does the collaborative stage help? Table 1 and Table 3's stage-2 rows on IDRiD fold 0, seed by seed.

For each seed, ``OUT/seedS/`` holds one ``pretrain`` run (stages 1a and 1b of ``configs/cpu/lesion_pretrained.yaml``:
G at the grader's 384 px, our CE2, and the plain grader) and the stage-2 rows of ``benchmarks/reproduce_idrid.py``
started from it, all at that seed (``seed=S``), so a row's gain over ``pretrain`` is measured within a seed:

* ``ori`` / ``lesion_pretrained``: Table 1's Ori and Lesion (Pretrained) (G frozen);
* ``lesion_semi`` / ``lesion_semi_adv``: the paper's formulation of CE2+Semi / CE2+Semi+Adv (Lesion (Semi) /
  Lesion (Semi+Adv));
* ``lesion_recipe`` / ``lesion_recipe_adv``: drcollab's one recipe (``configs/cpu/base.yaml``, no D) and the recipe
  with a D that sees the masks alone;
* ``lesion_recipe_weak_adv``: the recipe with that D, G's adversarial term weighted 0.1 (``loss.adv_weight``; the
  paper: 1);
* ``lesion_recipe_sources``: the recipe with X^I = IDRiD + Messidor-2 + EyePACS-256 (shares 0.5 / 0.3 / 0.2; one epoch
  of the three sets' 3,282 training photos, 1.7 x the draws of IDRiD's 6 epochs of 330);
  ``lesion_recipe_adv_sources`` the same with D (not run unless asked for with ``--rows``).

Every run is scored by ``drcollab evaluate --val-fold-of`` on IDRiD fold 0 (11 pixel-labelled photos at full
resolution, 83 graded). The report gives each row's median over the seeds with the seeds' range, and the targets:
CE2+Semi >= CE2 + 0.02 mean AUC-PR; CE2+Semi+Adv >= CE2+Semi; Lesion (Semi) kappa >= Lesion (Pretrained) + 0.02 with
G not worse than CE2.

    DRCOLLAB_IDRID=../shared/data/IDRiD .venv/bin/python benchmarks/bench_stage2.py --out runs/stage2 --seeds 0 1 2
    .venv/bin/python benchmarks/bench_stage2.py --report

A row already finished is reused and an interrupted one resumes (``drcollab train --resume``); results are merged
into ``benchmarks/results/bench_stage2.json`` after every row, so a run stopped part-way keeps what it measured.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

import results_io
import rowbench
from reproduce_idrid import SKIP_PRETRAIN, rows
from results_io import MISSING, markdown

from drcollab.constants import LESIONS

SOURCES = [
    {"format": "idrid-grade", "root": os.environ.get("DRCOLLAB_IDRID", "../shared/data/IDRiD"), "share": 0.5},
    {"format": "messidor2", "root": os.environ.get("DRCOLLAB_MESSIDOR2", "../shared/data/Messidor-2"), "share": 0.3},
    {"format": "eyepacs", "root": os.environ.get("DRCOLLAB_EYEPACS", "../shared/data/EyePACS-256"), "share": 0.2}]
ROWS = {"pretrain": "CE2 (stage 1a, G at 384 px) and the plain grader (stage 1b)",
        "ori": "Ori: the plain grader, 6 more epochs",
        "lesion_pretrained": "Lesion (Pretrained): G frozen, its masks weight the grader's features",
        "lesion_semi": "the paper's Semi: alpha as G's pseudo masks",
        "lesion_semi_adv": "the paper's Semi+Adv: Semi and a D that sees image and masks",
        "lesion_recipe": "the recipe (configs/cpu/base.yaml): refined pseudo masks, zero targets, alpha from G's "
                         "masks, no D",
        "lesion_recipe_adv": "the recipe and a D on the masks",
        "lesion_recipe_weak_adv": "the recipe and a D on the masks, G's adversarial term weighted 0.1 "
                                  "(loss.adv_weight)",
        "lesion_recipe_sources": "the recipe, X^I = IDRiD + Messidor-2 + EyePACS-256",
        "lesion_recipe_adv_sources": "the recipe and a D on the masks, X^I = IDRiD + Messidor-2 + EyePACS-256"}
ASKED_FOR = {"lesion_recipe_adv_sources"}  # rows run only when named with --rows
# Who is which target's row: the paper's formulation and the recipe.
TARGETS = [("CE2+Semi - CE2, mean AUC-PR (target >= 0.02)", "mean_auc_pr", "lesion_semi", "pretrain"),
           ("CE2+Semi - CE2, mean AUC-PR (target >= 0.02)", "mean_auc_pr", "lesion_recipe", "pretrain"),
           ("CE2+Semi+Adv - CE2+Semi, mean AUC-PR (target >= 0)", "mean_auc_pr", "lesion_semi_adv", "lesion_semi"),
           ("CE2+Semi+Adv - CE2+Semi, mean AUC-PR (target >= 0)", "mean_auc_pr", "lesion_recipe_adv", "lesion_recipe"),
           ("CE2+Semi+Adv - CE2+Semi, mean AUC-PR (target >= 0)", "mean_auc_pr", "lesion_recipe_weak_adv",
            "lesion_recipe"),
           ("Lesion (Semi) - Lesion (Pretrained), kappa (target >= 0.02)", "kappa", "lesion_semi", "lesion_pretrained"),
           ("Lesion (Semi) - Lesion (Pretrained), kappa (target >= 0.02)", "kappa", "lesion_recipe",
            "lesion_pretrained"),
           ("Lesion (Semi+Adv) - Lesion (Pretrained), kappa", "kappa", "lesion_recipe_adv", "lesion_pretrained"),
           ("CE2+Semi+Adv - CE2, mean AUC-PR", "mean_auc_pr", "lesion_recipe_adv", "pretrain"),
           ("X^I + sources - X^I IDRiD, mean AUC-PR", "mean_auc_pr", "lesion_recipe_sources", "lesion_recipe"),
           ("X^I + sources - X^I IDRiD, kappa", "kappa", "lesion_recipe_sources", "lesion_recipe"),
           ("X^I + sources - X^I IDRiD with D, mean AUC-PR", "mean_auc_pr", "lesion_recipe_adv_sources",
            "lesion_recipe_adv"),
           ("X^I + sources - X^I IDRiD with D, kappa", "kappa", "lesion_recipe_adv_sources", "lesion_recipe_adv")]


def row_command(seed_out: Path, row: str, seed: int) -> tuple[str, list[str]]:
    """``(config, overrides)`` of ``row`` at ``seed``, started from ``seed_out/pretrain``."""
    table = rows(seed_out)
    if row == "lesion_recipe_weak_adv":
        # In `lesion_recipe_adv` G's adversarial term stays near 1 while lambda_ce x its masks' BCE is about 0.3.
        config, overrides = table["lesion_recipe_adv"]
        overrides = [*overrides, "name=lesion_recipe_weak_adv", "loss.adv_weight=0.1"]
    elif row in ("lesion_recipe_sources", "lesion_recipe_adv_sources"):
        config, overrides = table[row.removesuffix("_sources")]
        overrides = [*overrides, f"name={row}", "data.image=" + json.dumps(SOURCES), "joint.epochs=1"]
    else:
        config, overrides = table[row]
    assert row == "pretrain" or all(o in overrides for o in SKIP_PRETRAIN)
    return f"configs/cpu/{config}", [*overrides, f"seed={seed}"]


def collect(out: Path, row: str, seed: int, wall: float | None) -> dict:
    m = json.loads((out / f"seed{seed}" / "eval" / row / "metrics.json").read_text())
    seg = m.get("segmentation") or {}
    aps = {k: (seg.get(k) or {}).get("auc_pr") for k in LESIONS}
    known = [v for v in aps.values() if v is not None]
    grading = m.get("grading") or {}
    return {"row": row, "seed": seed, "run": rowbench.run_name(row, seed), "description": ROWS[row],
            **{f"ap_{k}": v for k, v in aps.items()},
            "mean_auc_pr": sum(known) / len(known) if seg and len(known) == len(LESIONS) else None,
            "accuracy": grading.get("accuracy"), "kappa": grading.get("kappa"),
            "referral_auc": (grading.get("referral") or {}).get("auc"),
            "train_min": round(wall / 60, 1) if wall is not None else None}


def _spread(values: list[float]) -> str:
    if not values:
        return MISSING
    text = f"{statistics.median(values):.3f}"
    return text + (f" ({min(values):.3f}–{max(values):.3f})" if len(values) > 1 else "")


def report(data: dict) -> str:
    by_row: dict[str, list[dict]] = {}
    for r in data["rows"]:
        by_row.setdefault(r["row"], []).append(r)
    keys = ["mean_auc_pr", *(f"ap_{k}" for k in LESIONS), "accuracy", "kappa", "referral_auc"]
    lines = [[f"`{row}`", ROWS[row], str(len(by_row[row])),
              *(_spread([r[k] for r in by_row[row] if r.get(k) is not None]) for k in keys)]
             for row in ROWS if row in by_row]
    text = [markdown(["row", "what", "seeds", "mean AUC-PR", *(f"{k} AUC-PR" for k in LESIONS), "DR accuracy",
                      "kappa", "referral AUC"], lines, "llr" + "r" * len(keys))]
    target_lines = []
    for what, key, row, base in TARGETS:
        pairs = {r["seed"]: r[key] for r in by_row.get(row, []) if r.get(key) is not None}
        bases = {r["seed"]: r[key] for r in by_row.get(base, []) if r.get(key) is not None}
        diffs = [pairs[s] - bases[s] for s in pairs if s in bases]
        target_lines.append([what, f"`{row}` - `{base}`", str(len(diffs)), _spread(diffs)])
    text.append(markdown(["comparison", "rows", "seeds", "difference, median (range)"], target_lines, "llrr"))
    return "\n\n".join(text) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/stage2"))
    parser.add_argument("--rows", nargs="+", choices=list(ROWS), default=[r for r in ROWS if r not in ASKED_FOR])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    results_io.add_arguments(parser, "bench_stage2")
    args = parser.parse_args()
    if results_io.printed_report(args, report):
        return
    idrid = results_io.idrid_root()
    recorded = results_io.read(args.json) if args.json.is_file() else {"rows": []}
    results = {(r["row"], r["seed"]): r for r in recorded["rows"]}
    for seed in args.seeds:
        seed_out = args.out / f"seed{seed}"
        seed_out.mkdir(parents=True, exist_ok=True)
        for row in ["pretrain", *(r for r in args.rows if r != "pretrain")]:
            config, overrides = row_command(seed_out, row, seed)
            wall = rowbench.train_and_evaluate(seed_out, row, config, overrides, idrid)
            if wall is None and (row, seed) in results:
                continue
            results[(row, seed)] = collect(args.out, row, seed, wall)
            data = results_io.write(args.json, sorted(results.values(), key=lambda r: (r["seed"], list(ROWS).index(
                r["row"]))))
            print(report(data), flush=True)


if __name__ == "__main__":
    main()
