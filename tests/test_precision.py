"""Precision by capability: bf16 where native, fp16 + GradScaler on older GPUs, fp32 on other CPUs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import drcollab.precision as precision
from drcollab.precision import resolve_precision
from drcollab.training.config import TrainConfig
from drcollab.training.steps import Nets, seg_step

CUDA = torch.device("cuda", 0)


@pytest.mark.parametrize(("capability", "dtype", "scaled"), [
    ((9, 0), torch.bfloat16, False),  # H100 / H200
    ((8, 0), torch.bfloat16, False),  # A100
    ((7, 0), torch.float16, True),  # V100, the paper's DGX-1
    ((6, 1), torch.float16, True),
])
def test_auto_on_cuda_follows_compute_capability(monkeypatch, capability, dtype, scaled):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    p = resolve_precision("auto", CUDA)
    assert (p.dtype, p.scaled) == (dtype, scaled)
    assert f"compute capability {capability[0]}.{capability[1]}" in str(p)
    assert ("GradScaler" in str(p)) == scaled


@pytest.mark.parametrize(("native", "dtype"), [(True, torch.bfloat16), (False, None)])
def test_auto_on_cpu_is_bf16_only_where_native(monkeypatch, native, dtype):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    p = resolve_precision("auto", torch.device("cpu"))
    assert p.dtype == dtype and p.grad_scaler() is None


def test_explicit_modes_win_over_the_device():
    assert resolve_precision("off", CUDA).dtype is None
    assert resolve_precision("fp16", CUDA).scaled
    assert resolve_precision("bf16", torch.device("cpu")).dtype == torch.bfloat16


def test_a_step_whose_scaled_gradients_overflow_is_skipped_and_the_scale_lowered():
    torch.manual_seed(0)
    g = nn.Conv2d(3, 4, 3, padding=1)
    scaler = resolve_precision("fp16", torch.device("cpu")).grad_scaler()
    scaler._init_scale = 2.0**40  # the fp16 backward overflows to inf at this scale
    nets = Nets(generator=g, opt_generator=torch.optim.SGD(g.parameters(), lr=1.0), scaler=scaler)
    before = [p.detach().clone() for p in g.parameters()]
    batch = {"image": torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8),
             "masks": torch.rand(2, 4, 8, 8) > 0.5, "fov": torch.ones(2, 1, 8, 8, dtype=torch.bool)}
    cfg = TrainConfig.model_validate({"data": {"pixel": [{"format": "generic", "root": "x"}]},
                                      "grade_pretrain": {"epochs": 0}, "joint": {"epochs": 0}})
    autocast = resolve_precision("fp16", torch.device("cpu")).autocast()
    seg_step(nets, batch, cfg, autocast)
    assert all(torch.equal(a, b) for a, b in zip(before, g.parameters(), strict=True))
    assert scaler.get_scale() == 2.0**39  # halved after the overflow
    scaler.update(2.0**8)  # a sane scale: the next step updates
    seg_step(nets, batch, cfg, autocast)
    assert not any(torch.equal(a, b) for a, b in zip(before, g.parameters(), strict=True))
