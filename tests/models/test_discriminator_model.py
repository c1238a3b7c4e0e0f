"""D through the shared tester, and its input checks."""

from __future__ import annotations

import pytest
import torch
from model_tester import ModelTester

from drcollab.config import DiscriminatorConfig
from drcollab.models import LesionDiscriminator

TINY = (4, 4, 8, 8, 16)


class TestDiscriminator(ModelTester):
    model_cls = LesionDiscriminator
    cases = [
        [DiscriminatorConfig(widths=TINY), (2, 3, 64, 64), (2,)],
        [DiscriminatorConfig(widths=TINY), (3, 3, 32, 48), (3,)],
        [DiscriminatorConfig(widths=TINY, num_lesions=2), (2, 3, 40, 40), (2,)],
        [DiscriminatorConfig(widths=TINY, sees_image=False), (2, 3, 64, 64), (2,)],
    ]

    def inputs(self, config: DiscriminatorConfig, shape: tuple[int, ...]) -> tuple[torch.Tensor, ...]:
        b, _, h, w = shape
        return torch.randn(shape), torch.rand(b, config.num_lesions, h, w)


def test_bad_inputs_are_refused_with_the_shapes() -> None:
    d = LesionDiscriminator(DiscriminatorConfig(widths=TINY))
    with pytest.raises(ValueError, match="image .* and masks .* differ"):
        d(torch.zeros(1, 3, 64, 64), torch.zeros(1, 4, 32, 32))
    with pytest.raises(ValueError, match="expects 3 image and 4 mask channels, got 3 and 2"):
        d(torch.zeros(1, 3, 64, 64), torch.zeros(1, 2, 64, 64))
    with pytest.raises(ValueError, match="smaller than 32 px"):
        d(torch.zeros(1, 3, 16, 64), torch.zeros(1, 4, 16, 64))


def test_a_mask_only_d_judges_the_masks_not_the_image() -> None:
    """``sees_image: false``: two different images with the same masks get the same logit; the masks' gradient
    still flows (G's adversarial term reaches G through them)."""
    torch.manual_seed(0)
    d = LesionDiscriminator(DiscriminatorConfig(widths=TINY, sees_image=False)).eval()
    masks = torch.rand(1, 4, 64, 64, requires_grad=True)
    a, b = d(torch.randn(1, 3, 64, 64), masks), d(torch.randn(1, 3, 64, 64), masks)
    assert torch.equal(a, b)
    a.sum().backward()
    assert masks.grad is not None and masks.grad.abs().sum() > 0
    seeing = LesionDiscriminator(DiscriminatorConfig(widths=TINY)).eval()
    assert not torch.equal(seeing(torch.randn(1, 3, 64, 64), masks), seeing(torch.randn(1, 3, 64, 64), masks))
