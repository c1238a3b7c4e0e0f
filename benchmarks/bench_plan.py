"""Memory plan of every configs/paper/ stage on 1 and 8 GPUs of 80 GB and 141 GB, without and with checkpointing.

Each distinct stage is measured once (``training/plan.py`` ``measure_stage``: the stage's real step at
``--measure-size`` px for per-GPU batches of 1 and 2, on this machine's device, in ``--precision``) and scaled to
the config's image size; the tables give ``drcollab plan``'s figures for each GPU count and memory.

    .venv/bin/python benchmarks/bench_plan.py --measure-size 128 > plan.md
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import asdict
from pathlib import Path

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
    args = parser.parse_args()
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
    print(f"Measured on {device} ({platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads) at {args.measure_size} px in {args.precision}: "
          f"{len(measured)} distinct stage measurements in {took:.0f} s. Memory per GPU includes 2 GB reserved.\n")
    print("Activations per image (stage 2: per X^I + X^P pair) at the stage's size, GB:\n")
    print("| stage | px | ckpt off | ckpt on | weights + Adam | rows |")
    print("|---|---|---|---|---|---|")
    seen: dict[str, list[str]] = {}
    for row, memories in per_row.items():
        cfg = load_config(TrainConfig, PAPER / f"{row}.yaml")
        for m in memories[::2]:
            seen.setdefault(stage_key(cfg, m.stage), []).append(row)
    lines: dict[str, list[str]] = {}  # one line per distinct figure (e.g. stage 1b is the same ori grader everywhere)
    for (key, ckpt), m in measured.items():
        if not ckpt:
            on = measured[(key, True)]
            line = (f"| {m.stage} | {m.size} | {m.unit_bytes / GB:.2f} | {on.unit_bytes / GB:.2f} | "
                    f"{m.state_bytes / GB:.2f} |")
            lines.setdefault(line, []).extend(seen[key])
    for line, names in lines.items():
        print(f"{line} {', '.join(names)} |")
    print("\nPer GPU: memory at the config's global batch split over the GPUs, yes/no = fits, and in brackets the "
          "largest per-GPU batch that fits (stage 2: X^I images, with as many X^P) -> the accumulation that makes "
          "the config's batch fit.\n")
    for ckpt in (False, True):
        print(f"Activation checkpointing {'on' if ckpt else 'off'}:\n")
        print("| rows | stage | global batch | " + " | ".join(f"{g} x {gb} GB" for g, gb in SETUPS) + " |")
        print("|---|---|---|" + "---|" * len(SETUPS))
        done: dict[str, list[str]] = {}
        for row, memories in per_row.items():
            cfg = load_config(TrainConfig, PAPER / f"{row}.yaml")
            for m in memories:
                if m.checkpointing != ckpt:
                    continue
                cells = []
                for gpus, gb in SETUPS:
                    [r] = plan_rows(cfg, [m], gpus, gb * GB)
                    acc = r.get("accumulation")
                    tail = f" -> x{acc}" if acc and acc > 1 else ("" if acc else " -> none")
                    cells.append(f"{r['need_gb']:.0f} GB {'yes' if r['fits'] else 'no'} ({r['largest']}){tail}")
                line = f"| {m.stage} | {cfg.stage(m.stage).batch_size} | " + " | ".join(cells) + " |"
                done.setdefault(line, []).append(row)
        for line, rows_ in done.items():
            print(f"| {', '.join(rows_)} {line}")
        print()

if __name__ == "__main__":
    main()
