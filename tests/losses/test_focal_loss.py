"""Focal loss against cross-entropy and hand-worked values."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from drcollab.losses import focal_loss

LN3 = math.log(3.0)


def test_gamma_zero_without_alpha_is_cross_entropy() -> None:
    torch.manual_seed(0)
    logits, target = torch.randn(16, 5) * 3, torch.randint(0, 5, (16,))
    torch.testing.assert_close(focal_loss(logits, target, gamma=0.0), F.cross_entropy(logits, target))


def test_hand_worked_values() -> None:
    # logits [0, ln 3]: softmax = [1/4, 3/4].
    logits = torch.tensor([[0.0, LN3], [0.0, LN3]])
    # target 1: p_t = 3/4, -(1/4)^2 * ln(3/4) = 0.0625 * 0.2876821 = 0.0179801
    # target 0: p_t = 1/4, -(3/4)^2 * ln(1/4) = 0.5625 * 1.3862944 = 0.7797906
    assert focal_loss(logits[:1], torch.tensor([1]), gamma=2.0).item() == pytest.approx(0.0179801, abs=1e-6)
    assert focal_loss(logits[:1], torch.tensor([0]), gamma=2.0).item() == pytest.approx(0.7797906, abs=1e-6)
    # batch mean: (0.0179801 + 0.7797906) / 2 = 0.3988854
    assert focal_loss(logits, torch.tensor([1, 0]), gamma=2.0).item() == pytest.approx(0.3988854, abs=1e-6)
    # alpha = [0.25, 0.75]: (0.75 * 0.0179801 + 0.25 * 0.7797906) / 2 = (0.0134851 + 0.1949477) / 2 = 0.1042164
    value = focal_loss(logits, torch.tensor([1, 0]), gamma=2.0, alpha=[0.25, 0.75])
    assert value.item() == pytest.approx(0.1042164, abs=1e-6)
    # five equal logits: p_t = 1/5, -(4/5)^2 * ln(1/5) = 0.64 * 1.6094379 = 1.0300403
    assert focal_loss(torch.zeros(1, 5), torch.tensor([3]), gamma=2.0).item() == pytest.approx(1.0300403, abs=1e-6)


def test_focusing_down_weights_easy_examples_and_stays_finite() -> None:
    easy = torch.tensor([[10.0, 0.0, 0.0, 0.0, 0.0]])
    ce = focal_loss(easy, torch.tensor([0]), gamma=0.0)
    assert focal_loss(easy, torch.tensor([0]), gamma=2.0) < 1e-6 * ce
    extreme = torch.tensor([[1e4, -1e4, 0.0, 0.0, 0.0]], requires_grad=True)
    loss = focal_loss(extreme, torch.tensor([1]), gamma=2.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(extreme.grad).all()
    assert loss.item() == pytest.approx(2e4, rel=1e-6)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="alpha needs one weight per class"):
        focal_loss(torch.zeros(2, 5), torch.tensor([0, 1]), alpha=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"logits must be \(B, K\)"):
        focal_loss(torch.zeros(2, 5), torch.tensor([0]))
    with pytest.raises(ValueError, match="gamma must be >= 0"):
        focal_loss(torch.zeros(2, 5), torch.tensor([0, 1]), gamma=-1.0)
