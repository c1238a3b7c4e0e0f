"""One tester for the three networks (after segmentation_models.pytorch's BaseModelTester).

A test class sets ``model_cls`` and ``cases`` (rows ``[config, input_shape, expected_shape]``,
``input_shape`` being the image's ``(B, C, H, W)``) and, where the network takes more than an
image or returns more than a tensor, overrides ``inputs`` and ``outputs``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from drcollab.models import load_model, save_model

Case = tuple[Any, tuple[int, ...], tuple[int, ...]]


class ModelTester:
    model_cls: type[nn.Module]
    cases: list[Case]

    def inputs(self, config: Any, shape: tuple[int, ...]) -> tuple[torch.Tensor, ...]:
        return (torch.randn(shape),)

    def outputs(self, out: Any) -> list[torch.Tensor]:
        """Every tensor the network returns; the first is the one whose shape the case table gives."""
        return [out]

    def make(self, config: Any, shape: tuple[int, ...], seed: int = 0) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
        torch.manual_seed(seed)
        model = self.model_cls(config)
        return model, self.inputs(config, shape)

    def test_output_shape(self, case: Case) -> None:
        config, shape, expected = case
        model, inputs = self.make(config, shape)
        outs = self.outputs(model(*inputs))
        assert tuple(outs[0].shape) == expected
        assert model.config == config

    def test_every_parameter_gets_a_gradient(self, case: Case) -> None:
        config, shape, _ = case
        model, inputs = self.make(config, shape)
        # timm zero-initialises the last norm of each residual branch (zero_init_last), which blocks the
        # branch's gradient exactly at initialisation; a trained model has no such zeros.
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d) and m.weight is not None and not m.weight.any():
                nn.init.ones_(m.weight)
        outs = self.outputs(model.train()(*inputs))
        # A random projection, not a plain sum: the sum of a batch-normed output has zero gradient.
        loss = sum((o * torch.randn_like(o)).sum() for o in outs)
        loss.backward()
        missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
        assert not missing, f"parameters without gradient: {missing}"
        bad = [n for n, p in model.named_parameters() if not torch.isfinite(p.grad).all()]
        assert not bad, f"non-finite gradients: {bad}"
        assert all(torch.isfinite(o).all() for o in outs)

    def test_eval_outputs_are_finite_and_deterministic(self, case: Case) -> None:
        config, shape, _ = case
        model, inputs = self.make(config, shape)
        model.eval()
        with torch.no_grad():
            first, second = self.outputs(model(*inputs)), self.outputs(model(*inputs))
        for a, b in zip(first, second, strict=True):
            assert torch.isfinite(a).all()
            assert torch.equal(a, b)

    def test_save_load_round_trip(self, case: Case, tmp_path: Path) -> None:
        config, shape, _ = case
        model, inputs = self.make(config, shape)
        with torch.no_grad():
            model.train()(*inputs)  # move the BN running statistics away from their initial values
        model.eval()
        save_model(model, tmp_path / "model", metadata={"step": 7})
        loaded = load_model(tmp_path / "model")
        assert type(loaded) is type(model) and loaded.config == model.config and not loaded.training
        with torch.no_grad():
            for a, b in zip(self.outputs(model(*inputs)), self.outputs(loaded(*inputs)), strict=True):
                assert torch.equal(a, b)
