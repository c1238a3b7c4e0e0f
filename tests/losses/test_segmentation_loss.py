"""Masked BCE against hand-worked values; invalid pixels never reach the loss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from drcollab.losses import masked_bce_with_logits

LN3 = math.log(3.0)
# BCE at logit 0 (p = 1/2), target 1: ln 2 = 0.6931472
# BCE at logit ln 3 (p = 3/4), target 1: -ln(3/4) = 0.2876821; target 0: -ln(1/4) = 1.3862944


def test_hand_worked_mean_over_valid_pixels_only() -> None:
    logits = torch.tensor([0.0, LN3, LN3]).view(1, 1, 1, 3)
    target = torch.tensor([1.0, 1.0, 0.0]).view(1, 1, 1, 3)
    valid = torch.tensor([True, True, False]).view(1, 1, 1, 3)
    # (0.6931472 + 0.2876821) / 2 = 0.4904146
    assert masked_bce_with_logits(logits, target, valid).item() == pytest.approx(0.4904146, abs=1e-6)
    # all valid: (0.6931472 + 0.2876821 + 1.3862944) / 3 = 0.7890412
    assert masked_bce_with_logits(logits, target).item() == pytest.approx(0.7890412, abs=1e-6)
    # float weights [1, 3, 0]: (0.6931472 + 3 * 0.2876821) / 4 = 0.3890484
    weights = torch.tensor([1.0, 3.0, 0.0]).view(1, 1, 1, 3)
    assert masked_bce_with_logits(logits, target, weights).item() == pytest.approx(0.3890484, abs=1e-6)


def test_logits_and_targets_at_invalid_pixels_do_not_matter() -> None:
    torch.manual_seed(0)
    logits, target = torch.randn(2, 4, 8, 8), (torch.rand(2, 4, 8, 8) > 0.7).float()
    valid = torch.rand(2, 1, 8, 8) > 0.5  # per pixel, e.g. the field of view
    base = masked_bce_with_logits(logits, target, valid)
    changed = logits.clone().requires_grad_(False)
    changed[~valid.expand_as(logits)] = float("nan")
    target2 = target.clone()
    target2[~valid.expand_as(target)] = 7.0
    changed.requires_grad_(True)
    loss = masked_bce_with_logits(changed, target2, valid)
    loss.backward()
    torch.testing.assert_close(loss, base)
    assert torch.isfinite(changed.grad).all() and (changed.grad[~valid.expand_as(logits)] == 0).all()
    expected = F.binary_cross_entropy_with_logits(logits[valid.expand_as(logits)], target[valid.expand_as(target)])
    torch.testing.assert_close(base, expected)


def test_per_lesion_validity_drops_unannotated_lesions() -> None:
    torch.manual_seed(1)
    logits, target = torch.randn(2, 4, 8, 8), (torch.rand(2, 4, 8, 8) > 0.7).float()
    valid = torch.tensor([[1, 1, 0, 1], [0, 1, 1, 1]], dtype=torch.bool).view(2, 4, 1, 1)
    got = masked_bce_with_logits(logits, target, valid)
    keep = valid.expand_as(logits)
    torch.testing.assert_close(got, F.binary_cross_entropy_with_logits(logits[keep], target[keep]))


def test_no_valid_pixel_gives_zero_with_zero_gradient() -> None:
    logits = torch.randn(1, 4, 4, 4, requires_grad=True)
    loss = masked_bce_with_logits(logits, torch.ones(1, 4, 4, 4), torch.zeros(1, 4, 1, 1))
    loss.backward()
    assert loss.item() == 0.0 and (logits.grad == 0).all()


def test_shape_errors_name_the_shapes() -> None:
    with pytest.raises(ValueError, match=r"logits \(1, 4, 4, 4\) != target \(1, 3, 4, 4\)"):
        masked_bce_with_logits(torch.zeros(1, 4, 4, 4), torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError, match=r"valid \(1, 3, 1, 1\) does not broadcast to \(1, 4, 4, 4\)"):
        masked_bce_with_logits(torch.zeros(1, 4, 4, 4), torch.zeros(1, 4, 4, 4), torch.ones(1, 3, 1, 1))


def test_soft_dice_hand_worked() -> None:
    import math

    from drcollab.losses import mask_loss, masked_soft_dice

    # One lesion channel, p = sigmoid(0) = 0.5 on 4 pixels, target (1, 0, 0, 0), smoothing 1:
    # dice = (2 * 0.5 + 1) / (2 + 1 + 1) = 0.5 -> loss 0.5.
    logits = torch.zeros(1, 1, 2, 2)
    target = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    assert float(masked_soft_dice(logits, target)) == pytest.approx(0.5)
    # Only the first row valid: dice = (2 * 0.5 + 1) / (1 + 1 + 1) = 2/3 -> loss 1/3.
    valid = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
    assert float(masked_soft_dice(logits, target, valid)) == pytest.approx(1 / 3)
    # bce_dice = BCE + weight * Dice; BCE at p = 0.5 is log 2.
    assert float(mask_loss(logits, target, None, "bce_dice", 2.0)) == pytest.approx(math.log(2) + 1.0)


def test_positive_weights_hand_worked() -> None:
    import math

    from drcollab.losses import mask_loss

    # Logit 0 everywhere; 1 positive of 4 pixels with weight 3: mean of (3 log 2, log 2, log 2, log 2) = 1.5 log 2.
    logits = torch.zeros(1, 4, 2, 2)
    target = torch.zeros(1, 4, 2, 2)
    target[:, :, 0, 0] = 1
    loss = mask_loss(logits, target, None, "bce", pos_weight=(3.0, 3.0, 3.0, 3.0))
    assert float(loss) == pytest.approx(1.5 * math.log(2))
    valid = torch.zeros(1, 1, 2, 2)
    valid[..., 0, :] = 1  # first row: (3 log 2 + log 2) / 2
    loss = mask_loss(logits, target, valid, "bce", pos_weight=(3.0, 3.0, 3.0, 3.0))
    assert float(loss) == pytest.approx(2 * math.log(2))
