"""The floor of prediction time on this CPU: the release's FLOPs by layer kind, the rate each kind attains alone,
and the time they allow beside the measured forward passes.

Four workloads of the release bundle, counted with forward hooks on its real modules and cross-checked with
``torch.utils.flop_counter.FlopCounterMode``: ``G tiled`` (G over the overlapping tiles exactly as the predictor
runs it: 36 tiles of 256 px at 1152 with overlap 64), ``G whole`` (one 1152-px pass), ``grader`` (384 px, with the
masks and lesion statistics the predictor gives it) and ``predictor`` (``Predictor.forward``: G tiled, the mask path
and the grader). FLOPs are 2 x multiply-accumulates, by kind: ``dense`` (groups 1, kernel > 1), ``depthwise``
(groups = in_channels), ``pointwise`` (1x1), ``grouped`` (any other groups), ``linear``, and ``other``, an estimate
for batch norm (2 per element), ReLU (1) and pooling (1 per window element). Functional operations (bilinear
up-sampling, concatenation, residual sums, tile blending, sigmoid, lesion statistics) are not hooked; FlopCounterMode
counts only the matrix products and convolutions, so it checks the conv + linear sum (and sees the lesion
statistics' two matrix products in ``predictor``).

Rates: each kind's largest distinct layers (module and input shape, by FLOPs) run alone, fp32 and bf16 (autocast
with bf16 inputs, or bf16 weights and tensors), channels_last and not; two warm-up calls, then the median of
``--runs``. A workload's floor in a precision is the sum over its kinds of FLOPs / the kind's best rate (``by kind``)
and their total / the best rate of any of its layers (``whole``), over the convolution and linear kinds; ``other``'s
FLOPs at its own rate are reported beside (eager PyTorch runs them as layers of their own; a fusing runtime folds
or fuses most of them into the convolutions). ``predictor``'s floor is G tiled's plus the grader's.
Measured: the real forward in inference mode, fp32 and bf16 autocast, channels_last and not (``bf16 autocast cl``
is ``drcollab predict --amp --channels-last``).

    .venv/bin/python benchmarks/bench_floor.py              # measure; writes benchmarks/results/bench_floor.json
    .venv/bin/python benchmarks/bench_floor.py --report     # the Markdown tables from that file
    .venv/bin/python benchmarks/bench_floor.py --quick      # smoke check at tiny sizes, runs/bench_floor_quick.json
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from drcollab.inference.bundle import load_bundle
from drcollab.inference.predictor import Predictor
from drcollab.models.mask_path import grader_inputs
from drcollab.models.tiling import tile_starts, tiled_apply

KINDS = ("dense", "depthwise", "pointwise", "grouped", "linear", "other")
OTHER = (nn.modules.batchnorm._BatchNorm, nn.ReLU, nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd,
         nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd)
# name: (weights dtype, input dtype, bf16 autocast, channels_last); the first four are also the measured modes.
CONFIGS = {
    "fp32": (torch.float32, torch.float32, False, False),
    "fp32 cl": (torch.float32, torch.float32, False, True),
    "bf16 autocast": (torch.float32, torch.bfloat16, True, False),
    "bf16 autocast cl": (torch.float32, torch.bfloat16, True, True),
    "bf16 native": (torch.bfloat16, torch.bfloat16, False, False),
    "bf16 native cl": (torch.bfloat16, torch.bfloat16, False, True),
}
MODES = tuple(CONFIGS)[:4]
PRECISIONS = ("fp32", "bf16", "any")
MIN_RUN_S = 0.01  # a timed run repeats a layer until it lasts this long, above the clock's noise
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
OUT = Path(__file__).parent / "results/bench_floor.json"
QUICK_OUT = Path("runs/bench_floor_quick.json")  # a smoke check's numbers mean nothing: never the committed record


def layer_kind(module: nn.Module) -> str | None:
    """The kind a leaf module's work is counted under; None: not counted."""
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, nn.modules.conv._ConvNd):
        if module.groups == 1:
            return "pointwise" if math.prod(module.kernel_size) == 1 else "dense"
        return "depthwise" if module.groups == module.in_channels else "grouped"
    return "other" if isinstance(module, OTHER) else None


def layer_flops(module: nn.Module, x: torch.Tensor, out: torch.Tensor) -> int:
    """FLOPs of one call: 2 x multiply-accumulates of a convolution or linear layer, an estimate for the others."""
    if isinstance(module, nn.Linear):
        return 2 * out.numel() * module.in_features
    if isinstance(module, nn.modules.conv._ConvNd):
        taps = module.in_channels // module.groups * math.prod(module.kernel_size)  # MACs per output element
        if module.transposed:  # every input element meets every tap of its group's out_channels
            return 2 * x.numel() * module.out_channels // module.groups * math.prod(module.kernel_size)
        return 2 * out.numel() * taps
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return 2 * out.numel()  # scale and shift
    if isinstance(module, (nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd)):
        return x.numel()
    if isinstance(module, (nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd)):
        k = module.kernel_size
        return out.numel() * (math.prod(k) if isinstance(k, tuple) else k ** (x.dim() - 2))
    return out.numel()


@dataclass
class Call:
    """One call of a counted leaf module: its kind, the module, its input shape and FLOPs."""

    kind: str
    module: nn.Module
    shape: tuple[int, ...]
    flops: int


def count_calls(models: list[nn.Module], run: Callable[[], object]) -> list[Call]:
    """Every counted leaf-module call of ``models`` while ``run()`` runs (in inference mode)."""
    calls: list[Call] = []

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        calls.append(Call(layer_kind(module), module, tuple(inputs[0].shape), layer_flops(module, inputs[0], out)))

    leaves = [m for model in models for m in model.modules() if not any(m.children()) and layer_kind(m)]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.inference_mode():
            run()
    finally:
        for h in handles:
            h.remove()
    return calls


def counter_flops(run: Callable[[], object]) -> int | None:
    """FlopCounterMode's total for ``run()``; None (with a message) where it fails on these models."""
    try:
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            run()
    except Exception as err:  # a cross-check only: report it and go on
        print(f"FlopCounterMode failed: {type(err).__name__}: {err}", file=sys.stderr)
        return None
    return counter.get_total_flops()


def median_seconds(fn: Callable[[], object], runs: int) -> float:
    """Median seconds of one ``fn()`` over ``runs`` timed runs after two warm-up calls (oneDNN primitive creation,
    then the repeat count: a run repeats ``fn`` until it lasts ``MIN_RUN_S``)."""
    fn()
    start = time.perf_counter()
    fn()
    reps = max(1, int(MIN_RUN_S / max(time.perf_counter() - start, 1e-7)))
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(reps):
            fn()
        times.append((time.perf_counter() - start) / reps)
    return statistics.median(times)


def time_layer(call: Call, config: str, runs: int) -> float:
    """Median seconds of one call of ``call``'s module alone on a random input of its shape under ``config``."""
    weights, dtype, autocast, channels_last = CONFIGS[config]
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    module = copy.deepcopy(call.module).to(dtype=weights).to(memory_format=fmt)
    x = torch.randn(call.shape, dtype=dtype)
    x = x.contiguous(memory_format=fmt) if x.dim() == 4 else x
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        return median_seconds(lambda: module(x), runs)


def distinct_layers(calls: list[Call]) -> list[dict]:
    """Calls grouped by module and input shape, largest total FLOPs first (``call`` is one of each group's)."""
    groups: dict[tuple, dict] = {}
    for c in calls:
        g = groups.setdefault((repr(c.module), c.shape), {"kind": c.kind, "module": repr(c.module),
                                                          "input": list(c.shape), "calls": 0, "flops": 0, "call": c})
        g["calls"] += 1
        g["flops"] += c.flops
    return sorted(groups.values(), key=lambda g: -g["flops"])


def layer_rates(calls: list[Call], per_kind: int, runs: int, cache: dict) -> tuple[list[dict], dict]:
    """Time each kind's ``per_kind`` largest distinct layers under every config (``cache`` shares timings between
    workloads). Returns the timed layers (with GFLOP/s per config) and each kind's best GFLOP/s per config."""
    timed, rates, layers = [], {}, distinct_layers(calls)
    for kind in KINDS:
        for layer in [g for g in layers if g["kind"] == kind][:per_kind]:
            call = layer.pop("call")
            key = (layer["module"], tuple(layer["input"]))
            if key not in cache:
                cache[key] = {config: time_layer(call, config, runs) for config in CONFIGS}
                print(f"  {kind} {layer['module']} on {layer['input']}: "
                      + ", ".join(f"{c} {call.flops / s / 1e9:.1f}" for c, s in cache[key].items()) + " GFLOP/s",
                      file=sys.stderr, flush=True)
            layer["seconds"] = cache[key]
            layer["gflops"] = {c: call.flops / s / 1e9 for c, s in cache[key].items()}
            best = rates.setdefault(kind, dict.fromkeys(CONFIGS, 0.0))
            for c, rate in layer["gflops"].items():
                best[c] = max(best[c], rate)
            timed.append(layer)
    return timed, rates


def floor_seconds(flops: dict[str, int], rates: dict[str, dict[str, float]], precision: str) -> dict[str, float]:
    """A workload's floor in ``precision`` (the ``fp32``, ``bf16`` or ``any`` configs), rates in GFLOP/s.

    ``by_kind``: the sum over the convolution and linear kinds of FLOPs / the kind's best rate; ``whole``: their
    FLOPs / the best rate of any of them. ``other``: what the batch norms, ReLUs and poolings add at their own best
    rate as separate layers, as in eager PyTorch (a fusing runtime folds or fuses most into the convolutions).
    """
    best = {kind: max(r for c, r in by_config.items() if precision == "any" or c.startswith(precision))
            for kind, by_config in rates.items()}
    compute = {kind: n for kind, n in flops.items() if n and kind != "other"}
    return {"by_kind": sum(n / (best[kind] * 1e9) for kind, n in compute.items()),
            "whole": sum(compute.values()) / (max(best[kind] for kind in compute) * 1e9),
            "other": flops["other"] / (best["other"] * 1e9) if flops["other"] else 0.0}


@dataclass
class Workload:
    """A forward pass to count and time: the ``models`` it runs and ``forward(mode)``, its call in that mode."""

    models: list[nn.Module]
    forward: Callable[[str], Callable[[], object]]


def in_mode(models: list[nn.Module], fn: Callable[..., object], *inputs: torch.Tensor | None) -> Workload:
    """``fn(*inputs)`` with ``models`` and the 4-D inputs in a mode's memory format, under its autocast."""

    def forward(mode: str) -> Callable[[], object]:
        _, _, autocast, channels_last = CONFIGS[mode]
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        for m in models:
            m.to(memory_format=fmt)
        xs = [x.contiguous(memory_format=fmt) if x is not None and x.dim() == 4 else x for x in inputs]

        def call() -> object:
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                return fn(*xs)

        return call

    return Workload(models, forward)


def workloads(predictor: Predictor, size: int) -> dict[str, Workload]:
    """G tiled, G whole, the grader and the whole predictor on one ``size``-px image, as ``predictor`` runs them."""
    bundle, tile, overlap = predictor.bundle, predictor.tile, predictor.overlap
    g, c = bundle.generator, bundle.grader
    image = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))  # (1, 3, S, S)
    with torch.inference_mode():
        inputs = grader_inputs(g, image, predictor.grader_factor, tile, overlap, c.config.lesion_stats)
    small = F.avg_pool2d(image, predictor.grader_factor)  # (1, 3, S/k, S/k)

    def whole_predictor(mode: str) -> Callable[[], object]:
        _, _, autocast, channels_last = CONFIGS[mode]
        for m in (g, c):
            m.to(memory_format=torch.contiguous_format)  # Predictor makes them channels_last when asked
        p = Predictor(bundle, amp=autocast, channels_last=channels_last, tile=tile, overlap=overlap)
        return lambda: p.forward(image)

    return {
        "G tiled": in_mode([g], lambda x: tiled_apply(g, x, tile, overlap) if tile else g(x), image),
        "G whole": in_mode([g], g, image),
        "grader": in_mode([c], c, small, inputs.masks, inputs.stats),
        "predictor": Workload([g, c], whole_predictor),
    }


def measure(args: argparse.Namespace) -> dict:
    """Count, time and measure every workload; the JSON record."""
    if args.threads:
        torch.set_num_threads(args.threads)
    bundle = load_bundle(args.bundle)
    if bundle.generator is None or bundle.grader is None:
        sys.exit(f"{args.bundle}: bench_floor needs a bundle with both G and a grader")
    quick = {"tile": 128, "overlap": 64} if args.quick else {}  # 2 x 2 tiles of a 192-px image
    predictor = Predictor(bundle, **quick)
    size = 192 if args.quick else bundle.input_preprocess.size
    runs, per_kind = (1, 1) if args.quick else (args.runs, args.layers)
    tiles = len(tile_starts(size, predictor.tile, predictor.overlap)) ** 2 if predictor.tile else 1
    load_before, cache, results = os.getloadavg()[0], {}, {}
    for name, work in workloads(predictor, size).items():
        print(f"{name}:", file=sys.stderr, flush=True)
        run = work.forward("fp32")
        calls = count_calls(work.models, run)
        r = results[name] = {"flops": {kind: sum(c.flops for c in calls if c.kind == kind) for kind in KINDS},
                             "flop_counter": counter_flops(run),
                             "g_passes": sum(c.module is bundle.generator.head for c in calls)}
        if name == "predictor":  # G tiled, then the grader
            r["floor_s"] = {p: {f: results["G tiled"]["floor_s"][p][f] + results["grader"]["floor_s"][p][f]
                                for f in ("by_kind", "whole", "other")} for p in PRECISIONS}
        else:
            r["layers"], r["rates"] = layer_rates(calls, per_kind, runs, cache)
            r["floor_s"] = {p: floor_seconds(r["flops"], r["rates"], p) for p in PRECISIONS}
        r["measured_s"] = {mode: median_seconds(work.forward(mode), runs) for mode in MODES}
        print(f"  measured: {r['measured_s']}", file=sys.stderr, flush=True)
    cpu, flags = cpu_info()
    return {
        "command": " ".join([os.path.relpath(sys.executable), *sys.argv]),
        "machine": {"cpu": cpu, "flags": {f: f in flags for f in CPU_FLAGS}, "logical_cpus": os.cpu_count(),
                    "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "capability": torch.backends.cpu.get_cpu_capability(),
                    "load_before": load_before, "load_after": os.getloadavg()[0]},
        "settings": {"bundle": str(args.bundle), "size": size, "grader_size": size // predictor.grader_factor,
                     "tile": predictor.tile, "overlap": predictor.overlap, "tiles": tiles, "runs": runs,
                     "layers_per_kind": per_kind, "quick": args.quick},
        "workloads": results,
    }


def cpu_info() -> tuple[str, set[str]]:
    """The CPU model and its flags from /proc/cpuinfo (Linux; elsewhere the machine type and no flags)."""
    name, flags = os.uname().machine, set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                name = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    return name, flags


def report(result: dict) -> str:
    """Three Markdown tables: FLOPs by kind, the rates each kind attains alone, floors beside measured seconds."""
    m, s, work = result["machine"], result["settings"], result["workloads"]
    kinds = [k for k in KINDS if any(w["flops"][k] for w in work.values())]
    flags = ", ".join(f for f, on in m["flags"].items() if on) or "none of " + ", ".join(m["flags"])
    lines = [f"Command: `{result['command']}`",
             f"Machine: {m['cpu']} ({flags}; torch {m['capability']}), {m['logical_cpus']} logical CPUs, torch "
             f"{m['torch']}, {m['threads']} threads; 1-minute load average {m['load_before']:.1f} before, "
             f"{m['load_after']:.1f} after",
             f"Settings: G at {s['size']} px in {s['tiles']} tiles of {s['tile']} (overlap {s['overlap']}), grader at "
             f"{s['grader_size']} px, batch 1; median of {s['runs']} runs, {s['layers_per_kind']} layers per kind timed"
             + (" (--quick: sizes and runs for a smoke check only)" if s["quick"] else ""), "",
             "GFLOP per image (2 x MACs; 'other' estimated):", "",
             "| workload | G passes | " + " | ".join(kinds) + " | conv + linear | FlopCounterMode |",
             "|---|" + "---:|" * (len(kinds) + 3)]
    for name, w in work.items():
        matmul = sum(n for k, n in w["flops"].items() if k != "other")
        counter = "failed" if w["flop_counter"] is None else f"{w['flop_counter'] / 1e9:.2f}"
        lines.append(f"| {name} | {w['g_passes']} | " + " | ".join(f"{w['flops'][k] / 1e9:.2f}" for k in kinds)
                     + f" | {matmul / 1e9:.2f} | {counter} |")
    lines += ["", "GFLOP/s each kind attains alone (best of its timed layers):", "",
              "| workload | kind | share of FLOPs | timed layers (share of kind) | " + " | ".join(CONFIGS) + " |",
              "|---|---|" + "---:|" * (len(CONFIGS) + 2)]
    for name, w in work.items():
        total = sum(w["flops"].values())
        for kind, rates in w.get("rates", {}).items():
            timed = [layer for layer in w["layers"] if layer["kind"] == kind]
            cover = sum(layer["flops"] for layer in timed) / w["flops"][kind]
            lines.append(f"| {name} | {kind} | {w['flops'][kind] / total:.1%} | {len(timed)} ({cover:.0%}) | "
                         + " | ".join(f"{rates[c]:.3g}" for c in CONFIGS) + " |")
    lines += ["", "Seconds per image: floors (conv + linear by kind / whole model, + other layers alone) beside the "
              "measured forward:", "",
              "| workload | fp32 floor | bf16 floor | " + " | ".join(MODES) + " | best measured / best floor |",
              "|---|" + "---:|" * (len(MODES) + 3)]
    for name, w in work.items():
        f = w["floor_s"]
        floors = [f"{f[p]['by_kind']:.3f} / {f[p]['whole']:.3f} + {f[p]['other']:.3f}" for p in ("fp32", "bf16")]
        measured = [w["measured_s"][mode] for mode in MODES]
        lines.append(f"| {name} | " + " | ".join(floors) + " | " + " | ".join(f"{t:.3f}" for t in measured)
                     + f" | {min(measured) / f['any']['by_kind']:.1f}x |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=Path("release/drcollab-idrid-cpu"))
    parser.add_argument("--runs", type=int, default=5, help="timed runs per layer and per forward (median)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's own, one per physical core)")
    parser.add_argument("--layers", type=int, default=4, help="distinct layers timed per kind and workload")
    parser.add_argument("--quick", action="store_true",
                        help="smoke check: G at 192 px in 2 x 2 tiles of 128, one run, one layer per kind")
    parser.add_argument("--out", type=Path, default=None, help="the JSON record, written or read with --report "
                        f"(default: benchmarks/results/{OUT.name}; with --quick {QUICK_OUT})")
    parser.add_argument("--report", action="store_true", help="only print the tables from OUT, measuring nothing")
    args = parser.parse_args()
    args.out = args.out or (QUICK_OUT if args.quick else OUT)
    if not args.report:
        result = measure(args)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(report(json.loads(args.out.read_text())))


if __name__ == "__main__":
    main()
