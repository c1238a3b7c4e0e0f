"""Parameter counts and training throughput (forward + backward) of G, D and the grader.

Each model runs in train mode on random inputs, fp32 (contiguous) and bf16 autocast with
channels_last, side by side; one warm-up step, then the median of ``--runs`` timed steps.
Writes ``benchmarks/results/bench_models.json`` and prints its Markdown table; ``--report`` prints the table from
that file, measuring nothing.

    .venv/bin/python benchmarks/bench_models.py --size 512 --batch 2 --runs 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import results_io  # benchmarks/ is the script's folder
import torch
from torch import nn

from drcollab.config import DiscriminatorConfig, GeneratorConfig, GraderConfig
from drcollab.models import LesionDiscriminator, LesionGenerator, LesionGrader

NARROW = (16, 32, 64, 128, 256)
MODELS: dict[str, Callable[[], nn.Module]] = {
    "G-xception": lambda: LesionGenerator(GeneratorConfig(variant="xception")),
    "G-conv": lambda: LesionGenerator(GeneratorConfig(variant="conv")),
    "G-xception-narrow": lambda: LesionGenerator(GeneratorConfig(variant="xception", widths=NARROW)),
    "G-conv-narrow": lambda: LesionGenerator(GeneratorConfig(variant="conv", widths=NARROW)),
    "D": lambda: LesionDiscriminator(DiscriminatorConfig()),
    "grader-attention-resnet18": lambda: LesionGrader(GraderConfig(mode="attention", backbone="resnet18")),
}


def step_seconds(model: nn.Module, inputs: tuple[torch.Tensor, ...], bf16: bool) -> float:
    """Wall time of one forward + backward pass."""
    start = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = model(*inputs)
        out = out[0] if isinstance(out, tuple) else out  # the grader's logits
    out.float().mean().backward()
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def bench(name: str, size: int, batch: int, runs: int) -> dict[str, float]:
    torch.manual_seed(0)
    model = MODELS[name]().train()
    image = torch.randn(batch, 3, size, size)
    masks = torch.rand(batch, 4, size, size)
    inputs = (image,) if isinstance(model, LesionGenerator) else (image, masks)
    row = {"params": float(sum(p.numel() for p in model.parameters()))}
    for label, bf16 in (("fp32", False), ("bf16_cl", True)):
        fmt = torch.channels_last if bf16 else torch.contiguous_format
        model = model.to(memory_format=fmt)
        args = tuple(x.contiguous(memory_format=fmt) for x in inputs)
        step_seconds(model, args, bf16)  # warm-up: allocator, oneDNN primitive caches
        times = [step_seconds(model, args, bf16) for _ in range(runs)]
        row[label] = batch / statistics.median(times)
        print(f"  {name} {label}: median {statistics.median(times):.2f} s/step over {runs}", file=sys.stderr)
    return row


def report(data: dict) -> str:
    rows = [[r["model"], f"{r['params'] / 1e6:.2f}", f"{r['fp32']:.3f}", f"{r['bf16_cl']:.3f}", f"{r['ratio']:.2f}"]
            for r in data["rows"]]
    return results_io.markdown(["model", "params (M)", "fp32 img/s", "bf16 autocast + channels_last img/s",
                                "bf16 / fp32"], rows, "lrrrr")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    results_io.add_arguments(parser, "bench_models")
    args = parser.parse_args()
    if args.report:
        print(report(results_io.read(args.json)))
        return
    rows = []
    for name in args.models:
        r = bench(name, args.size, args.batch, args.runs)
        rows.append({"model": name, **r, "ratio": r["bf16_cl"] / r["fp32"]})
    bf16 = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    data = results_io.write(args.json, rows, settings=f"{args.size}x{args.size}, batch {args.batch}, train mode, "
                            f"median of {args.runs} steps", bf16_fast_path=bool(bf16))
    print(report(data))


if __name__ == "__main__":
    main()
