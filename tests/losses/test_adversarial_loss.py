"""The adversarial terms of Eq. 3 against hand-worked values."""

from __future__ import annotations

import math

import pytest
import torch

from drcollab.losses import discriminator_loss, generator_adversarial_loss, segmentation_loss

LN3 = math.log(3.0)
# sigmoid(0) = 1/2, sigmoid(ln 3) = 3/4.


def test_discriminator_loss_hand_worked() -> None:
    # real D = 1/2 -> -ln(1/2) = 0.6931472; fake D = 3/4 -> -ln(1 - 3/4) = 1.3862944; sum 2.0794415
    value = discriminator_loss(torch.tensor([0.0]), torch.tensor([LN3]))
    assert value.item() == pytest.approx(2.0794415, abs=1e-6)
    # batch means: real [1/2, 3/4] -> (0.6931472 + 0.2876821) / 2 = 0.4904146; fake [1/2] -> 0.6931472
    value = discriminator_loss(torch.tensor([0.0, LN3]), torch.tensor([0.0]))
    assert value.item() == pytest.approx(0.4904146 + 0.6931472, abs=1e-6)


def test_generator_adversarial_loss_is_non_saturating() -> None:
    # fake D = 3/4: -ln(3/4) = 0.2876821
    assert generator_adversarial_loss(torch.tensor([LN3])).item() == pytest.approx(0.2876821, abs=1e-6)
    # D sure the masks are fake (logit -20): the loss is ~20 and its gradient stays ~-1, not ~0.
    logit = torch.tensor([-20.0], requires_grad=True)
    loss = generator_adversarial_loss(logit)
    loss.backward()
    assert loss.item() == pytest.approx(20.0, rel=1e-6) and logit.grad.item() == pytest.approx(-1.0, abs=1e-6)


def test_extreme_logits_stay_finite() -> None:
    big = torch.tensor([1e4, -1e4])
    assert discriminator_loss(big, big).item() == pytest.approx(1e4, rel=1e-6)  # one wrong call each side
    assert torch.isfinite(generator_adversarial_loss(big))


def test_total_segmentation_loss_weights_the_bce() -> None:
    # Eq. 3 with lambda = 10: 0.5 + 10 * 0.1 = 1.5
    value = segmentation_loss(torch.tensor(0.5), torch.tensor(0.1))
    assert value.item() == pytest.approx(1.5)
    assert segmentation_loss(torch.tensor(0.5), torch.tensor(0.1), lambda_ce=0.0).item() == pytest.approx(0.5)


def test_the_adversarial_weight_scales_only_the_adversarial_term() -> None:
    # 0.1 * 0.5 + 10 * 0.1 = 1.05
    value = segmentation_loss(torch.tensor(0.5), torch.tensor(0.1), adv_weight=0.1)
    assert value.item() == pytest.approx(1.05)


def test_an_empty_fake_branch_adds_zero_and_stays_attached() -> None:
    """A batch without a fake adds 0 to both terms and keeps the graph: D learns from the reals alone."""
    real = torch.tensor([LN3], requires_grad=True)
    empty = real[:0]
    assert discriminator_loss(real, empty).item() == pytest.approx(0.2876821, abs=1e-6)
    adv = generator_adversarial_loss(empty)
    assert adv.item() == 0 and adv.requires_grad
