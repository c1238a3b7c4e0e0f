"""benchmarks/bench_floor.py: FLOPs and kinds of hand-worked layers, the hooks against FlopCounterMode, the floor."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks/bench_floor.py"
spec = importlib.util.spec_from_file_location("bench_floor", SCRIPT)
bench_floor = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = bench_floor  # dataclasses look their module up there
spec.loader.exec_module(bench_floor)

# module, input shape, kind, FLOPs (2 x multiply-accumulates; 'other' the script's estimate)
CASES = [
    (nn.Conv2d(3, 8, 3, padding=1), (1, 3, 16, 16), "dense", 2 * 3 * 8 * 9 * 256),
    (nn.Conv2d(3, 8, 3, padding=1), (2, 3, 16, 16), "dense", 2 * 2 * 3 * 8 * 9 * 256),
    (nn.Conv2d(3, 8, 3, stride=2, padding=1), (1, 3, 16, 16), "dense", 2 * 3 * 8 * 9 * 64),
    (nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), (1, 8, 16, 16), "depthwise", 2 * 8 * 9 * 256),
    (nn.Conv2d(8, 16, 3, padding=1, groups=8), (1, 8, 16, 16), "depthwise", 2 * 16 * 9 * 256),
    (nn.Conv2d(8, 4, 1, bias=False), (1, 8, 16, 16), "pointwise", 2 * 8 * 4 * 256),
    (nn.Conv2d(8, 8, 3, padding=1, groups=2), (1, 8, 16, 16), "grouped", 2 * 8 * 4 * 9 * 256),
    (nn.ConvTranspose2d(8, 4, 2, stride=2), (1, 8, 8, 8), "dense", 2 * 8 * 4 * 4 * 64),
    (nn.Linear(10, 3), (2, 10), "linear", 2 * 2 * 10 * 3),
    (nn.BatchNorm2d(8), (1, 8, 16, 16), "other", 2 * 8 * 256),
    (nn.ReLU(), (1, 8, 16, 16), "other", 8 * 256),
    (nn.MaxPool2d(2), (1, 8, 16, 16), "other", 8 * 256),
    (nn.Identity(), (1, 8, 16, 16), None, None),
]


@pytest.mark.parametrize(("module", "shape", "kind", "flops"), CASES,
                         ids=[f"{c[2]}-{type(c[0]).__name__}" for c in CASES])
def test_kind_and_flops(module: nn.Module, shape: tuple[int, ...], kind: str | None, flops: int | None) -> None:
    assert bench_floor.layer_kind(module) == kind
    calls = bench_floor.count_calls([module.eval()], lambda: module(torch.randn(shape)))
    assert [(c.kind, c.shape, c.flops) for c in calls] == ([] if kind is None else [(kind, shape, flops)])


def test_hooks_agree_with_flop_counter() -> None:
    """A separable block with a linear head: the hooks' conv + linear sum is FlopCounterMode's total."""
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.Conv2d(8, 16, 1),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5)).eval()
    x = torch.randn(2, 3, 16, 16)
    calls = bench_floor.count_calls([model], lambda: model(x))
    assert [c.kind for c in calls] == ["dense", "other", "other", "depthwise", "pointwise", "other", "linear"]
    assert sum(c.flops for c in calls if c.kind != "other") == bench_floor.counter_flops(lambda: model(x))


def test_floor_seconds() -> None:
    """100 GFLOP dense at 100 GFLOP/s plus 10 GFLOP depthwise at 10 GFLOP/s: 1 + 1 s by kind, 110 / 100 s whole."""
    flops = {"dense": 100e9, "depthwise": 10e9, "other": 1e9}
    rates = {"dense": {"fp32": 50.0, "fp32 cl": 100.0, "bf16 autocast": 400.0},
             "depthwise": {"fp32": 10.0, "fp32 cl": 5.0, "bf16 autocast": 20.0},
             "other": {"fp32": 2.0, "fp32 cl": 1.0, "bf16 autocast": 4.0}}
    fp32 = bench_floor.floor_seconds(flops, rates, "fp32")
    assert fp32 == pytest.approx({"by_kind": 2.0, "whole": 1.1, "other": 0.5})
    best = bench_floor.floor_seconds(flops, rates, "any")
    assert best == pytest.approx({"by_kind": 0.25 + 0.5, "whole": 110 / 400, "other": 0.25})
    assert math.isclose(bench_floor.floor_seconds({**flops, "other": 0}, rates, "bf16")["other"], 0.0)
