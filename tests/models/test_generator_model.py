"""G through the shared tester, both variants and both up-sampling modes, plus its size check."""

from __future__ import annotations

import pytest
import torch
from model_tester import ModelTester

from drcollab.config import GeneratorConfig
from drcollab.models import LesionGenerator
from drcollab.models.blocks import FeatureTuple, SeparableConv2d

TINY = (4, 8, 8, 16, 16)


class TestGenerator(ModelTester):
    model_cls = LesionGenerator
    cases = [
        [GeneratorConfig(widths=TINY), (2, 3, 64, 64), (2, 4, 64, 64)],
        [GeneratorConfig(widths=TINY, variant="conv"), (2, 3, 64, 64), (2, 4, 64, 64)],
        [GeneratorConfig(widths=TINY, upsample="transpose"), (1, 3, 48, 80), (1, 4, 48, 80)],
        [
            GeneratorConfig(widths=TINY, variant="conv", upsample="transpose", num_lesions=2),
            (2, 3, 32, 16),
            (2, 2, 32, 16),
        ],
        [GeneratorConfig(widths=TINY, in_channels=1), (2, 1, 16, 16), (2, 4, 16, 16)],
    ]


@pytest.mark.parametrize(
    "size, message",
    [((100, 64), "height 100 (nearest valid: 96 or 112)"), ((64, 8), "width 8 (nearest valid: 16 or 16)")],
)
def test_size_not_divisible_by_16_names_the_nearest_valid_sizes(size: tuple[int, int], message: str) -> None:
    model = LesionGenerator(GeneratorConfig(widths=TINY))
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        model(torch.zeros(1, 3, *size))


def test_variants_differ_only_in_the_convolution_type() -> None:
    xception = LesionGenerator(GeneratorConfig(widths=TINY))
    conv = LesionGenerator(GeneratorConfig(widths=TINY, variant="conv"))
    tuples_x = [m for m in xception.modules() if isinstance(m, FeatureTuple)]
    tuples_c = [m for m in conv.modules() if isinstance(m, FeatureTuple)]
    assert len(tuples_x) == len(tuples_c) == 9  # five down (x0..x4) and four up (u3..u0)
    # The first encoder tuple is a plain double conv in both; the other eight are separable only in xception.
    assert [t.shortcut is not None for t in tuples_x] == [False] + [True] * 8
    assert [any(isinstance(m, SeparableConv2d) for m in t.modules()) for t in tuples_x] == [False] + [True] * 8
    assert not any(isinstance(m, SeparableConv2d) for m in conv.modules())
    n_x = sum(p.numel() for p in xception.parameters())
    n_c = sum(p.numel() for p in conv.parameters())
    assert n_x < n_c  # separable convolutions are the point of the Xception tuple


@pytest.mark.parametrize("prior", [(0.01, 0.01, 0.01, 0.01), (0.001, 0.02, 0.05, 0.3)])
def test_head_prior_gives_the_configured_mean_probability(prior: tuple[float, ...]) -> None:
    torch.manual_seed(0)
    g = LesionGenerator(GeneratorConfig(widths=(4, 8, 8, 16, 16), head_prior=prior))
    with torch.no_grad():
        probs = torch.sigmoid(g(torch.rand(2, 3, 64, 64) * 2 - 1))  # (2, L, 64, 64)
    mean = probs.mean(dim=(0, 2, 3))
    torch.testing.assert_close(mean, torch.tensor(prior), rtol=0.1, atol=0.0)
    default = LesionGenerator(GeneratorConfig(widths=(4, 8, 8, 16, 16)))
    with torch.no_grad():
        assert torch.sigmoid(default(torch.rand(1, 3, 64, 64))).mean() > 0.2  # the paper's start: p ~ 0.5


def test_head_prior_is_one_value_per_lesion_in_0_1() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="one per lesion"):
        GeneratorConfig(head_prior=(0.01,))
    with pytest.raises(ValidationError, match=r"in \(0, 1\)"):
        GeneratorConfig(head_prior=(0.01, 0.0, 0.1, 0.1))
