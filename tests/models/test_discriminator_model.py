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
