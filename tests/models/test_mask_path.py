"""The one mask path: pooled, quantised masks and statistics from G's full-resolution output; G's weight digest."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from drcollab.config import GeneratorConfig
from drcollab.models import LesionGenerator
from drcollab.models.lesion_stats import lesion_statistics
from drcollab.models.mask_path import LEVELS, dequantise, generator_digest, grader_inputs, quantise
from drcollab.models.tiling import tiled_apply

TINY_G = GeneratorConfig(widths=(4, 8, 8, 16, 16))


@pytest.mark.parametrize("factor, tile", [(1, 0), (2, 0), (2, 32)])
@torch.inference_mode()
def test_grader_inputs_pool_quantise_and_take_statistics_at_gs_size(factor: int, tile: int) -> None:
    torch.manual_seed(0)
    g = LesionGenerator(TINY_G).eval()
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    out = grader_inputs(g, images, factor, tile, tile // 4, stats=True)
    logits = tiled_apply(g, images, tile, tile // 4) if tile else g(images)
    full = torch.sigmoid(logits)
    torch.testing.assert_close(out.full, full)
    assert out.masks.shape == (2, 4, 64 // factor, 64 // factor)
    torch.testing.assert_close(out.masks, F.avg_pool2d(full, factor), atol=0.5 / LEVELS, rtol=0)
    assert torch.equal(out.masks * LEVELS, torch.round(out.masks * LEVELS))  # whole levels of 1/255
    assert torch.equal(dequantise(quantise(out.masks)), out.masks)  # what the uint8 cache stores, exactly
    torch.testing.assert_close(out.stats, lesion_statistics(full))
    assert grader_inputs(g, images, factor, tile, tile // 4).stats is None


def test_the_digest_follows_gs_weights_and_buffers() -> None:
    torch.manual_seed(0)
    g = LesionGenerator(TINY_G)
    same = LesionGenerator(TINY_G)
    same.load_state_dict(g.state_dict())
    assert generator_digest(g) == generator_digest(same)
    with torch.no_grad():
        next(same.parameters()).view(-1)[0] += 1e-6
    assert generator_digest(g) != generator_digest(same)
    bn = next(m for m in g.modules() if isinstance(m, torch.nn.BatchNorm2d))
    before = generator_digest(g)
    bn.running_mean += 1.0
    assert generator_digest(g) != before
