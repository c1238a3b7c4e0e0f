"""Does ``torch.compile`` pay off on this machine? Train steps of G and the grader, eager vs compiled.

Both in the default CPU precision (bf16 autocast, channels_last), on random inputs; the compiled
model's first step (compilation) is reported on its own, then the median of ``--runs`` steps. Writes
``benchmarks/results/bench_compile.json`` and prints its Markdown table; ``--report`` prints the table from that
file, measuring nothing.

    .venv/bin/python benchmarks/bench_compile.py --runs 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import results_io  # benchmarks/ is the script's folder
import torch

from drcollab.config import GeneratorConfig, GraderConfig
from drcollab.models import LesionGenerator, LesionGrader


def steps(model: torch.nn.Module, x: torch.Tensor, runs: int, compiled: bool) -> tuple[float, float]:
    """(first step seconds, median of the following ``runs`` steps)."""
    model = model.to(memory_format=torch.channels_last)
    x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters())
    fn = torch.compile(model) if compiled else model
    times = []
    for _ in range(runs + 2):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = fn(x)
        out = out.logits if hasattr(out, "logits") else out
        out.float().mean().backward()
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - start)
    return times[0], statistics.median(times[2:])


def report(data: dict) -> str:
    rows = [[r["model"], f"{r['eager_s']:.2f}", f"{r['compiled_s']:.2f}", f"{r['first_s']:.0f}"] for r in data["rows"]]
    return results_io.markdown(["model", "eager step (s)", "compiled step (s)", "compiled first step (s)"], rows,
                               "lrrr")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    results_io.add_arguments(parser, "bench_compile")
    args = parser.parse_args()
    if args.report:
        print(report(results_io.read(args.json)))
        return
    cases = {
        "G xception 16..256, 8 x 192 px": (lambda: LesionGenerator(GeneratorConfig(widths=(16, 32, 64, 128, 256))),
                                           (8, 3, 192, 192)),
        "grader ori resnet18, 8 x 384 px": (lambda: LesionGrader(GraderConfig(mode="ori")), (8, 3, 384, 384)),
    }
    rows = []
    for name, (build, shape) in cases.items():
        torch.manual_seed(0)
        x = torch.randn(*shape)
        _, eager = steps(build(), x, args.runs, compiled=False)
        first, compiled = steps(build(), x, args.runs, compiled=True)
        rows.append({"model": name, "eager_s": eager, "compiled_s": compiled, "first_s": first})
    print(report(results_io.write(args.json, rows, settings=f"median of {args.runs} steps")))


if __name__ == "__main__":
    main()
