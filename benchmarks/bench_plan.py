"""Memory plan of every configs/paper/ stage on 1 and 8 GPUs of 80 GB and 141 GB, without and with checkpointing.

Each distinct stage is measured once (``training/plan.py`` ``measure_stage``: the stage's real step at
``--measure-size`` px for per-GPU batches of 1 and 2, on this machine's device, in ``--precision``) and scaled to
the config's image size; the tables give ``drcollab plan``'s figures for each GPU count and memory. Writes
``benchmarks/results/bench_plan.json`` and prints its Markdown tables; ``--report`` prints them from that file,
measuring nothing.

    .venv/bin/python benchmarks/bench_plan.py --measure-size 128
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import results_io  # benchmarks/ is the script's folder
import torch

from drcollab.config import load_config
from drcollab.precision import resolve_precision
from drcollab.training.config import STAGES, TrainConfig
from drcollab.training.plan import GB, StageMemory, measure_stage, plan_rows, quiet_native_logs

PAPER = Path(__file__).resolve().parents[1] / "configs/paper"
SETUPS = [(1, 80), (8, 80), (1, 141), (8, 141)]


def stage_key(cfg: TrainConfig, stage: str) -> str:
    """What a stage's memory depends on: its networks, sizes and batches (rows that share it are measured once)."""
    parts = {"data": cfg.data.model_dump(mode="json", include={"preprocess", "seg_size"}),
             "stage": cfg.stage(stage).model_dump(mode="json")}
    if stage in ("seg_pretrain", "joint"):
        parts["generator"] = cfg.generator.model_dump(mode="json")
    if stage in ("grade_pretrain", "joint"):
        parts["grader"] = cfg.grader.model_dump(mode="json")
    if stage == "joint":
        parts["discriminator"] = cfg.discriminator.model_dump(mode="json")
    return stage + json.dumps(parts, sort_keys=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measure-size", type=int, default=128)
    parser.add_argument("--precision", default="bf16")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--reuse", type=Path, default=None,
                        help="JSON of measurements: read if it exists (no measuring), else written")
    results_io.add_arguments(parser, "bench_plan")
    args = parser.parse_args()
    if args.report:
        print(report(results_io.read(args.json)))
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precision = resolve_precision(args.precision, device)
    rows = sorted(p.stem for p in PAPER.glob("*.yaml") if p.stem != "base")
    measured: dict[tuple[str, bool], StageMemory] = {}
    if args.reuse and args.reuse.is_file():
        saved = json.loads(args.reuse.read_text())
        measured = {(k, ckpt): StageMemory(**{**m, "unit": tuple(m["unit"])}) for k, ckpt, m in saved["measured"]}
    per_row: dict[str, list] = {}
    start = time.perf_counter()
    for row in rows:
        cfg = load_config(TrainConfig, PAPER / f"{row}.yaml")
        per_row[row] = []
        for stage in STAGES:
            if not cfg.stage(stage).epochs:
                continue
            for ckpt in (False, True):
                key = (stage_key(cfg, stage), ckpt)
                if key not in measured:
                    with quiet_native_logs():
                        measured[key] = measure_stage(cfg, stage, device, precision, args.measure_size, ckpt)
                per_row[row].append(measured[key])
    took = time.perf_counter() - start
    if args.reuse and args.reuse.is_file():
        took = json.loads(args.reuse.read_text()).get("seconds", took)
    elif args.reuse:
        args.reuse.write_text(json.dumps({"seconds": took,
                                          "measured": [[k, ckpt, asdict(m)] for (k, ckpt), m in measured.items()]}))
    activations: dict[str, dict] = {}
    plans = []
    for row, memories in per_row.items():
        cfg = load_config(TrainConfig, PAPER / f"{row}.yaml")
        for m in memories:
            if not m.checkpointing:
                on = measured[(stage_key(cfg, m.stage), True)]
                activations.setdefault(stage_key(cfg, m.stage), {
                    "stage": m.stage, "px": m.size, "off_gb": m.unit_bytes / GB, "on_gb": on.unit_bytes / GB,
                    "state_gb": m.state_bytes / GB, "rows": []})["rows"].append(row)
            setups = [{"gpus": gpus, "gpu_gb": gb, **{k: r.get(k) for k in ("need_gb", "fits", "largest",
                                                                                "accumulation")}}
                      for gpus, gb in SETUPS for r in plan_rows(cfg, [m], gpus, gb * GB)]
            plans.append({"row": row, "stage": m.stage, "checkpointing": m.checkpointing,
                          "global_batch": cfg.stage(m.stage).batch_size, "setups": setups})
    data = results_io.write(args.json, [], measured_on=f"{device} at {args.measure_size} px in {args.precision}, "
                            f"{len(measured)} distinct stage measurements in {took:.0f} s",
                            activations=list(activations.values()), plans=plans)
    print(report(data))


def report(data: dict) -> str:
    """The activations per image of each distinct stage, then the plan per GPU without and with checkpointing
    (memory per GPU includes 2 GB reserved; rows whose lines are the same share one)."""
    lines: dict[str, list[str]] = {}
    for a in data["activations"]:
        cells = [a["stage"], str(a["px"]), f"{a['off_gb']:.2f}", f"{a['on_gb']:.2f}", f"{a['state_gb']:.2f}"]
        lines.setdefault(" | ".join(cells), []).extend(a["rows"])
    parts = [results_io.markdown(["stage", "px", "ckpt off", "ckpt on", "weights + Adam", "rows"],
                                 [[line, ", ".join(rows)] for line, rows in lines.items()], "llllll")]
    for ckpt in (False, True):
        plans: dict[str, list[str]] = {}
        for p in data["plans"]:
            if p["checkpointing"] == ckpt:
                cells = [p["stage"], str(p["global_batch"]), *(setup_cell(s) for s in p["setups"])]
                plans.setdefault(" | ".join(cells), []).append(p["row"])
        head = ["rows", "stage", "global batch", *(f"{g} x {gb} GB" for g, gb in SETUPS)]
        table = results_io.markdown(head, [[", ".join(rows), line] for line, rows in plans.items()], "l" * len(head))
        parts.append(f"Activation checkpointing {'on' if ckpt else 'off'}:\n\n{table}")
    return "\n".join(parts)


def setup_cell(s: dict) -> str:
    """``need GB fits (largest per-GPU batch)`` and, where the batch does not fit, the accumulation that makes it."""
    acc = s["accumulation"]
    tail = f" -> x{acc}" if acc and acc > 1 else ("" if acc else " -> none")
    return f"{s['need_gb']:.0f} GB {'yes' if s['fits'] else 'no'} ({s['largest']}){tail}"


if __name__ == "__main__":
    main()
