"""Masks pooled to a coarser grid keep a small lesion at full strength."""

from __future__ import annotations

import torch

from drcollab.data.pooling import pool_masks


def test_a_one_pixel_lesion_keeps_its_value_in_its_cell() -> None:
    masks = torch.zeros(1, 2, 8, 8)
    masks[0, 0, 5, 2] = 0.9  # one pixel of lesion 0, in cell (1, 0) of a 4-pixel grid
    masks[0, 1, :4, 4:] = 0.25  # a uniform quarter of lesion 1
    pooled = pool_masks(masks, (2, 2))
    assert pooled.shape == (1, 2, 2, 2)
    assert torch.equal(pooled[0, 0], torch.tensor([[0.0, 0.0], [0.9, 0.0]]))
    assert torch.equal(pooled[0, 1], torch.tensor([[0.0, 0.25], [0.0, 0.0]]))
