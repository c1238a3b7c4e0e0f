"""Lesion masks on a coarser grid: the grader's m_l (G's probabilities on f_low's grid, Sec. 3.3).

It imports nothing but torch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pool_masks(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize mask probabilities ``(B, L, H, W)`` to f_low's ``(h, w)`` by adaptive max-pooling.

    Max (not average) pooling keeps a microaneurysm of a few pixels at full strength in its cell.
    """
    return F.adaptive_max_pool2d(masks, size)
