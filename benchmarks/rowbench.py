"""What the row benchmarks (``bench_seg.py``, ``bench_grade.py``) share: rows x seeds of ordinary ``drcollab train``
runs, stage minutes from ``metrics.csv``, medians over seeds and the committed record of every finished row."""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
from collections.abc import Callable, Iterable
from pathlib import Path


def run_name(row: str, seed: int) -> str:
    return row if seed == 0 else f"{row}@seed{seed}"


def stage_minutes(run: Path, stage: str) -> float:
    """Minutes between the first and the last logged step of ``stage`` (metrics.csv), i.e. training alone."""
    times = [float(r["time"]) for r in csv.DictReader((run / "metrics.csv").open()) if r["stage"] == stage]
    return round((max(times) - min(times)) / 60, 2)


def precompute_minutes(run: Path, stage: str = "grade_pretrain") -> float | None:
    """Minutes of G's pass over the grading images before ``stage`` (None: the run used no G's masks or statistics);
    part of :func:`stage_minutes`, and near 0 when G's cache already held the photos."""
    seconds = [float(r["value"]) for r in csv.DictReader((run / "metrics.csv").open())
               if r["stage"] == stage and r["key"] == "precompute/seconds"]
    return round(sum(seconds) / 60, 2) if seconds else None


def add_arguments(parser: argparse.ArgumentParser, rows: Iterable[str], out: str, recorded: Path) -> None:
    parser.add_argument("--out", type=Path, default=Path(out))
    parser.add_argument("--rows", nargs="+", default=None, choices=list(rows))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--set", nargs="*", default=[], help="extra key=value overrides for every run")
    parser.add_argument("--report", action="store_true", help="only collect finished rows into the table")
    parser.add_argument("--recorded", type=Path, default=recorded,
                        help="the committed results of earlier runs (each row's numbers as measured); finished rows "
                        "in OUT replace theirs, and the merged list is written back")


def run_rows(
    args: argparse.Namespace, rows: Iterable[str], run_row: Callable[[Path, str, int, str, list[str]], dict],
    collect: Callable[[Path, str, str], dict],
) -> list[dict]:
    """Every (row, seed) of ``args``: finished ones collected, the others run (``--report``: collected only)."""
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for row in args.rows or list(rows):
        for seed in args.seeds:
            name = run_name(row, seed)
            if args.report:
                if (args.out / "eval" / name / "metrics.json").is_file():
                    results.append(collect(args.out, name, row))
                continue
            if "DRCOLLAB_IDRID" not in os.environ:
                sys.exit("set DRCOLLAB_IDRID to the IDRiD root (the folder holding 'A. Segmentation')")
            results.append(run_row(args.out, row, seed, os.environ["DRCOLLAB_IDRID"], args.set))
            (args.out / "results.json").write_text(json.dumps(results, indent=1))
    return results


def rows_of(recorded: list[dict] | dict) -> list[dict]:
    """The rows of a results file: a list of rows, or ``{"provenance": ..., "rows": [...]}``."""
    return recorded if isinstance(recorded, list) else recorded["rows"]


def merge_recorded(path: Path, results: list[dict]) -> list[dict]:
    """The recorded rows with this run's replacing (or joining) them by run name, in order; written back (with the
    file's other fields, such as its provenance)."""
    recorded = json.loads(path.read_text()) if path.is_file() else []
    by_run = {r["run"]: r for r in rows_of(recorded)}
    by_run.update({r["run"]: r for r in results})
    merged = list(by_run.values())
    path.parent.mkdir(parents=True, exist_ok=True)
    out = merged if isinstance(recorded, list) else {**recorded, "rows": merged}
    path.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    return merged


def medians(results: list[dict], numbers: Callable[[dict], list[str]]) -> list[dict]:
    """One row per bench row: the median over its seeds of each of ``numbers(row)`` (None where none is known)."""
    groups: dict[str, list[dict]] = {}
    for r in results:
        groups.setdefault(r["row"], []).append(r)
    out = []
    for row, runs in groups.items():
        med = {k: (statistics.median(v) if (v := [r[k] for r in runs if r.get(k) is not None]) else None)
               for k in numbers(runs[0])}
        out.append({"row": row, "run": row if len(runs) == 1 else f"{row} (median of {len(runs)})",
                    "description": runs[0]["description"], "seeds": len(runs), **med})
    return out


def train_and_evaluate(
    out: Path, name: str, config: str, overrides: list[str], idrid: str, evaluate_args: Iterable[str] = (),
    run_name: str | None = None,
) -> float | None:
    """Train ``OUT/run_name`` (resuming an interrupted run) unless finished, then evaluate it on its validation fold
    into ``OUT/eval/name`` with ``evaluate_args`` added to ``drcollab evaluate``.

    ``run_name`` defaults to ``name``; another row's run name makes an evaluation-only row of that row's model
    (trained here with ``overrides`` if it is not finished yet). Returns the training command's wall seconds, or
    None when the run was already finished or is resumed here (then the wall time is only the resumed part's).
    """
    from reproduce_idrid import DRCOLLAB, sh  # the same printed, logged subprocess call

    run, evaluation = out / (run_name or name), out / "eval" / name
    wall = None
    if not (run / "model/bundle.json").is_file():
        resume = (run / "checkpoints/last.safetensors").is_file()
        cmd = [*DRCOLLAB, "train", "--resume", str(run)] if resume else [
            *DRCOLLAB, "train", "--config", config, "--out", str(run), "runtime.progress=false", *overrides]
        seconds = sh(cmd, out / f"{run.name}.log")
        wall = None if resume else seconds
    if not (evaluation / "metrics.json").is_file():
        sh([*DRCOLLAB, "evaluate", "--checkpoint", str(run), "--data", idrid, "--split", "train", "--val-fold-of",
            str(run), "--out", str(evaluation), "--workers", "1", "--overlays", "0",
            "--cache-dir", os.environ.get("DRCOLLAB_CACHE", "cache"), *evaluate_args], out / f"{name}.log")
    return wall


def quiet_minutes(run: Path, stage: str, window: int = 400) -> float | None:
    """The stage's steps at the rate of its fastest ``window``-step stretch (metrics.csv), in minutes.

    On 2 shared cores a run's wall time says as much about the other jobs as about the run; its fastest sustained
    stretch is the closest measure of what it costs alone (None: the stage logged fewer than ``window`` steps).
    """
    logged: dict[int, float] = {}
    for r in csv.DictReader((run / "metrics.csv").open()):
        if r["stage"] == stage and r["key"].startswith("train/"):
            logged.setdefault(int(r["global_step"]), float(r["time"]))
    steps = sorted(logged)
    rates = [(logged[a + window] - logged[a]) / window for a in steps if a + window in logged]
    if not rates:
        return None
    return round(min(rates) * (steps[-1] - steps[0] + (steps[1] - steps[0] if len(steps) > 1 else 0)) / 60, 2)


def stage_steps(run: Path, stage: str) -> int:
    """The last global step logged for ``stage`` (metrics.csv): its optimisation steps."""
    return max(int(r["global_step"]) for r in csv.DictReader((run / "metrics.csv").open()) if r["stage"] == stage)
