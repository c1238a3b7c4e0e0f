"""The DME loss: hand-worked values, partial labels (binary cross-entropy on a threshold), and images without a DME
label left out (never counted as DME 0)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from drcollab.constants import DME_TARGET_RISKS, MISSING_DME
from drcollab.losses import dme_loss

LN2 = math.log(2.0)
# logits [0, 0, ln 2]: softmax = [1/4, 1/4, 1/2]
ROW = [0.0, 0.0, LN2]


def test_hand_worked_values_over_the_labelled_images_only() -> None:
    logits = torch.tensor([ROW, ROW, ROW])
    target = torch.tensor([2, MISSING_DME, 0])
    # target 2: p_t = 1/2, CE = ln 2 = 0.6931472, focal = (1/2)^2 * ln 2 = 0.1732868
    # target 0: p_t = 1/4, CE = ln 4 = 1.3862944, focal = (3/4)^2 * ln 4 = 0.7797906
    # the missing one is left out: means over 2 images, not 3
    assert dme_loss(logits, target, "ce").item() == pytest.approx((0.6931472 + 1.3862944) / 2, abs=1e-6)
    assert dme_loss(logits, target, "focal", 2.0).item() == pytest.approx((0.1732868 + 0.7797906) / 2, abs=1e-6)


SOME_DME = DME_TARGET_RISKS.index((1, 2))  # risk 1 or 2: "DME of some risk"
NOT_REFERABLE = DME_TARGET_RISKS.index((0, 1))  # risk 0 or 1: Messidor-2's "no referable DME"


def test_partial_labels_hand_worked_values() -> None:
    logits = torch.tensor([ROW, ROW, ROW])
    target = torch.tensor([SOME_DME, NOT_REFERABLE, MISSING_DME])
    # some DME: p_S = p1 + p2 = 3/4, CE = -ln(3/4) = 0.2876821, focal = (1/4)^2 * 0.2876821 = 0.0179801
    # risk 0 or 1: p_S = p0 + p1 = 1/2, CE = ln 2 = 0.6931472, focal = (1/2)^2 * ln 2 = 0.1732868
    assert dme_loss(logits, target, "ce").item() == pytest.approx((0.2876821 + 0.6931472) / 2, abs=1e-6)
    assert dme_loss(logits, target, "focal", 2.0).item() == pytest.approx((0.0179801 + 0.1732868) / 2, abs=1e-6)


def test_a_binary_label_is_binary_cross_entropy_on_p_risk_at_least_the_threshold() -> None:
    torch.manual_seed(1)
    logits = torch.randn(6, 3)
    p = logits.softmax(1)
    # "some DME" (risk >= 1) against exact "no DME": BCE on P(risk >= 1) = p1 + p2
    target, y = torch.tensor([SOME_DME, 0, SOME_DME, 0, 0, SOME_DME]), torch.tensor([1.0, 0, 1, 0, 0, 1])
    want = F.binary_cross_entropy(p[:, 1] + p[:, 2], y)
    torch.testing.assert_close(dme_loss(logits, target, "ce"), want)
    # exact risk 2 against "risk 0 or 1": BCE on P(risk >= 2) = p2
    target = torch.tensor([2, NOT_REFERABLE, 2, NOT_REFERABLE, NOT_REFERABLE, 2])
    torch.testing.assert_close(dme_loss(logits, target, "ce"), F.binary_cross_entropy(p[:, 2], y))


def test_a_batch_with_missing_dme_equals_the_loss_over_the_labelled_ones() -> None:
    torch.manual_seed(0)
    logits, target = torch.randn(8, 3), torch.tensor([0, -1, 2, -1, 1, 1, -1, 0])
    known = target >= 0
    for kind in ("focal", "ce"):
        torch.testing.assert_close(dme_loss(logits, target, kind), dme_loss(logits[known], target[known], kind))
    # a missing label counted as DME 0 would give another number
    assert dme_loss(logits, target).item() != pytest.approx(dme_loss(logits, target.clamp(min=0)).item())


def test_a_batch_without_any_dme_label_contributes_zero_and_no_nan() -> None:
    logits = torch.randn(4, 3, requires_grad=True)
    loss = dme_loss(logits, torch.full((4,), MISSING_DME))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros(4, 3))


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="kind must be 'focal' or 'ce', got 'mse'"):
        dme_loss(torch.zeros(1, 3), torch.tensor([0]), "mse")
    with pytest.raises(ValueError, match=r"got \(2, 3\) and \(3,\)"):
        dme_loss(torch.zeros(2, 3), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"targets must lie in -1..4, got \[0, 5\]"):
        dme_loss(torch.zeros(2, 3), torch.tensor([0, 5]))
