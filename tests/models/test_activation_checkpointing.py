"""Activation checkpointing changes memory only: the same outputs, gradients and BN running statistics."""

from __future__ import annotations

import copy

import pytest
import torch

from drcollab.config import GeneratorConfig, GraderConfig
from drcollab.models import LesionGenerator, LesionGrader


def _run(model: torch.nn.Module, *inputs: torch.Tensor) -> tuple[torch.Tensor, dict, dict, int]:
    saved = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(*inputs)
    logits = out if torch.is_tensor(out) else out.logits
    (logits.square().mean() + (0 if torch.is_tensor(out) or out.attention is None else out.attention.mean())).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return logits.detach(), grads, {n: b.clone() for n, b in model.named_buffers()}, sum(saved.values())


def _same(model: torch.nn.Module, *inputs: torch.Tensor, saves: float) -> None:
    """Checkpointing keeps ``saves`` or less of the activations, and changes nothing else."""
    plain, ckpt = model, copy.deepcopy(model)
    ckpt.checkpointing = True
    a, b = _run(plain, *inputs), _run(ckpt, *inputs)
    assert b[3] < saves * a[3], (b[3], a[3])
    assert torch.equal(a[0], b[0])
    assert a[1].keys() == b[1].keys() and len(a[1]) == len(list(model.parameters()))
    for name in a[1]:
        assert torch.equal(a[1][name], b[1][name]), name
    for name in a[2]:  # recomputation must not update BN running statistics a second time
        assert torch.equal(a[2][name], b[2][name]), name


def test_generator_gradients_are_identical_with_checkpointing():
    torch.manual_seed(0)
    _same(LesionGenerator(GeneratorConfig(widths=(4, 8, 8, 16, 16))).train(), torch.randn(2, 3, 32, 32), saves=0.6)


@pytest.mark.parametrize("mode", ["ori", "attention"])
def test_grader_gradients_are_identical_with_checkpointing(mode):
    torch.manual_seed(0)
    grader = LesionGrader(GraderConfig(mode=mode, backbone="resnet18", att_channels=8)).train()
    masks = None if mode == "ori" else torch.rand(2, 4, 64, 64)
    _same(grader, *([torch.randn(2, 3, 64, 64)] + ([masks] if masks is not None else [])), saves=0.6)
