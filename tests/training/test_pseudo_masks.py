"""Stage 2's pseudo masks: alpha up-sampled to the image, optionally gated by G's masks and thresholded."""

from __future__ import annotations

import torch

from drcollab.training.steps import pseudo_masks


def test_pseudo_masks_upsample_gate_threshold_and_detach():
    alpha = torch.full((1, 2, 2, 2), 0.5, requires_grad=True)  # (B, L, h, w) on f_low's grid
    masks = torch.zeros(1, 2, 8, 8)
    masks[0, 1, 3, 4] = 1.0
    soft = pseudo_masks(alpha, masks)
    assert soft.shape == (1, 2, 8, 8) and not soft.requires_grad
    assert torch.allclose(soft, torch.full_like(soft, 0.5))  # bilinear up-sampling of a constant map
    gated = pseudo_masks(alpha, masks, "gated")
    assert gated[0, 1, 3, 4] == 0.5 and gated.sum() == 0.5  # the attention keeps only G's own lesion pixel
    assert torch.equal(pseudo_masks(alpha, masks, threshold=0.4), torch.ones(1, 2, 8, 8))
    assert torch.equal(pseudo_masks(alpha, masks, threshold=0.6), torch.zeros(1, 2, 8, 8))
