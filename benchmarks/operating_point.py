"""Referral operating points of a bundle on an evaluated set: sensitivity and specificity, with 95 % Wilson intervals,
at the threshold it was evaluated with, at P >= 0.5, and at the thresholds that reach target sensitivities and
specificities on that set (chosen as ``drcollab calibrate`` chooses them).

Reads an output folder of ``drcollab evaluate`` (its ``predictions.csv``: each graded image's labels and its own
P(referable); its ``metrics.json``: the rule and the threshold), so no model runs here. Writes
``benchmarks/results/operating_point.json`` and prints its Markdown table; ``--report`` prints the table from that
file alone.

    nice -n 19 .venv/bin/drcollab evaluate --checkpoint release/drcollab-idrid-cpu --data ../shared/data/IDRiD \\
        --format idrid-grade --split train --val-fold-of release/drcollab-idrid-cpu --out runs/release_eval
    .venv/bin/python benchmarks/operating_point.py --evaluation runs/release_eval
    .venv/bin/python benchmarks/operating_point.py --report
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import results_io  # benchmarks/ is the script's folder

from drcollab.config import ReferableConfig
from drcollab.evaluation.operating_point import OperatingPoint, choose_threshold, measure
from drcollab.inference.referable import is_referable

TARGETS = (("sensitivity", 0.90), ("sensitivity", 0.95), ("specificity", 0.90))


def read_evaluation(folder: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """``(N,)`` P(referable) and truth of the graded images of an evaluation, and its ``metrics.json``."""
    metrics = json.loads((folder / "metrics.json").read_text())
    referable = metrics["referable"]
    if referable is None:
        raise SystemExit(f"{folder}: the evaluation has no referral scores (it needs ICDR grades and a grader)")
    with (folder / "predictions.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if "grading" in r["tasks"].split("+")]
    rule = ReferableConfig.model_validate(referable["rule"])
    dme = np.array([int(r["dme"]) if r["dme"] != "" else -1 for r in rows]) if referable["uses_dme"] else None
    truth = is_referable(np.array([int(r["grade"]) for r in rows]), dme, rule)
    return np.array([float(r["referable_probability"]) for r in rows]), truth, metrics


def row(label: str, point: OperatingPoint) -> dict:
    return {"operating_point": label, "threshold": point.threshold, "sensitivity": point.sensitivity.record(),
            "specificity": point.specificity.record()}


def rows_of(scores: np.ndarray, truth: np.ndarray, threshold: float) -> list[dict]:
    rows = [row(f"the bundle's threshold (P ≥ {threshold:.4f})", measure(scores, truth, threshold))]
    if threshold != 0.5:
        rows.append(row("P ≥ 0.5 (the default)", measure(scores, truth, 0.5)))
    for target, value in TARGETS:
        rows.append(row(f"{target} ≥ {value:.2f} on this set", choose_threshold(scores, truth, target, value)))
    return rows


def report(data: dict) -> str:
    def share(s: dict) -> str:
        low, high = s["ci95"]
        return f"{s['value']:.3f} ({low:.3f}–{high:.3f}; {s['k']}/{s['n']})"

    head = ["operating point", "threshold", "sensitivity (95% Wilson CI; found / referable)",
            "specificity (95% Wilson CI; cleared / not referable)"]
    body = [[r["operating_point"], f"{r['threshold']:.4f}", share(r["sensitivity"]), share(r["specificity"])]
            for r in data["rows"]]
    return f"{data['bundle']} on {data['description']}:\n\n" + results_io.markdown(head, body, "lrll")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluation", type=Path, help="an output folder of drcollab evaluate")
    results_io.add_arguments(parser, "operating_point")
    args = parser.parse_args()
    if args.report:
        print(report(results_io.read(args.json)))
        return
    if args.evaluation is None:
        parser.error("give --evaluation (or --report)")
    scores, truth, metrics = read_evaluation(args.evaluation)
    rule = metrics["referable"]
    rows = rows_of(scores, truth, rule["threshold"])
    settings = {k: metrics["settings"][k] for k in ("device", "precision", "channels_last", "tile", "tta")}
    data = results_io.write(args.json, rows, bundle=metrics["model"]["name"], description=metrics["description"],
                            evaluation=str(args.evaluation), settings=settings, rule=rule["rule"],
                            uses_dme=rule["uses_dme"], interval="Wilson score, 95%")
    print(report(data))


if __name__ == "__main__":
    main()
