"""Prediction throughput of the three engines: PyTorch fp32, PyTorch bf16 + channels_last, onnxruntime (CPU).

A bundle with the CPU widths is built from random weights (speed does not depend on training): generator G
Xception U-Net widths (16, 32, 64, 128, 256), grader resnet18 in attention mode (C_att 64, f_low = layer1).
For each preprocess size the bundle is exported to ONNX, then ``Predictor.predict_preprocessed`` (forward,
sigmoid/softmax, lesion areas) runs on the same preprocessed synthetic images with each engine, side by side;
one warm-up call, then the median of ``--runs`` timed calls. Preprocessing (the same for every engine) is
timed once per size on the synthetic image of that size. Writes ``benchmarks/results/bench_predict.json`` and prints
its Markdown table; ``--report`` prints the table from that file, measuring nothing.

    .venv/bin/python benchmarks/bench_predict.py --sizes 512 1024 --batch 1 --runs 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import results_io  # benchmarks/ is the script's folder
import torch

from drcollab.config import GeneratorConfig, GraderConfig, PreprocessConfig
from drcollab.data.synthetic import generate_fundus
from drcollab.inference.onnx_engine import OnnxPredictor
from drcollab.inference.onnx_export import export_onnx
from drcollab.inference.predictor import Predictor
from drcollab.models import LesionGenerator, LesionGrader, save_model

WIDTHS = (16, 32, 64, 128, 256)


def write_bundle(root: Path, size: int) -> Path:
    """A complete bundle with random weights at the CPU widths."""
    torch.manual_seed(0)
    root.mkdir(parents=True)
    save_model(LesionGenerator(GeneratorConfig(widths=WIDTHS)), root / "generator")
    save_model(LesionGrader(GraderConfig(mode="attention", backbone="resnet18")), root / "grader")
    info = {
        "name": f"bench-{size}",
        "parts": {"generator": {"file": "generator"}, "grader": {"file": "grader"}},
        "preprocess": PreprocessConfig(size=size).model_dump(mode="json"),
    }
    (root / "bundle.json").write_text(json.dumps(info))
    return root


def median_seconds(fn, runs: int) -> float:
    fn()  # warm-up: allocator, oneDNN primitive caches, onnxruntime arenas
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_size(size: int, batch: int, runs: int, workdir: Path) -> dict[str, float]:
    bundle = write_bundle(workdir / f"bundle-{size}", size)
    start = time.perf_counter()
    export = export_onnx(bundle, workdir / f"model-{size}.onnx")
    export_s = time.perf_counter() - start
    images = [generate_fundus(seed, size).image for seed in range(batch)]
    torch_fp32 = Predictor(bundle)
    pres = [torch_fp32.preprocess(im) for im in images]
    row = {"preprocess_ms": 1000 * median_seconds(lambda: torch_fp32.preprocess(images[0]), runs)}
    engines = {
        "torch_fp32": torch_fp32,
        "torch_bf16_cl": Predictor(bundle, amp=True, channels_last=True),
        "onnxruntime": OnnxPredictor(export.path),
    }
    for name, predictor in engines.items():
        row[name] = batch / median_seconds(lambda p=predictor: p.predict_preprocessed(pres), runs)
        print(f"  {size}px {name}: {row[name]:.3f} img/s", file=sys.stderr, flush=True)
    row["export_s"] = export_s
    row["onnx_diff"] = export.max_abs_diff
    return row


def report(data: dict) -> str:
    head = ["preprocess size", "torch fp32 img/s", "torch bf16 + channels_last img/s", "onnxruntime img/s",
            "preprocessing ms/img", "ONNX export s", "ONNX max abs diff"]
    rows = [[str(r["size"]), f"{r['torch_fp32']:.3f}", f"{r['torch_bf16_cl']:.3f}", f"{r['onnxruntime']:.3f}",
             f"{r['preprocess_ms']:.0f}", f"{r['export_s']:.0f}", f"{r['onnx_diff']:.1e}"] for r in data["rows"]]
    return results_io.markdown(head, rows, "r" * len(head))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--runs", type=int, default=5)
    results_io.add_arguments(parser, "bench_predict")
    args = parser.parse_args()
    if args.report:
        print(report(results_io.read(args.json)))
        return
    load_before = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            rows.append({"size": size, **bench_size(size, args.batch, args.runs, Path(tmp))})
    data = results_io.write(args.json, rows, settings=f"batch {args.batch}, median of {args.runs} calls",
                            load_average=f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
    print(report(data))


if __name__ == "__main__":
    main()
