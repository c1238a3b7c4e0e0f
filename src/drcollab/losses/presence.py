"""A loss on the attention maps α themselves: what the image-level labels say about each lesion.

The grading loss cannot set α's overall level: α ⊙ f_low enters conv → BatchNorm, which normalises a uniform
scale away, so α stays near sigmoid(0) = 0.5 everywhere. The labels can: an ICDR grade 0 rules out every
lesion, grade 1 all but microaneurysms, an edema risk of 0 hard exudates (``data/presence.py``). Two terms:

- **presence**: per lesion, α pooled over the field of view as the mean of its top-k cells (k a share of the
  FOV's cells), against the implied presence by BCE, where it is known. Top-k rather than max: a max moves one
  cell per step and follows noise; a log-sum-exp's temperature is harder to read. k ~ 1 % of the FOV is of the
  order of the lesions' own share, so "present" asks for a lesion-sized region of high α, not for a high field.
- **absent pixels**: BCE towards 0 on every FOV cell of α for a lesion the labels rule out, so α's level there
  is taught cell by cell, not only through its top-k.

And where pixel labels exist, :func:`attention_mask_loss`: α on the pixel-labelled images against their ground
truth, max-pooled to α's grid. The presence terms set α's level but not its place (a high region anywhere
satisfies them); the few masks say where lesions are, so α learns to look there on the grade-only images too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from drcollab.data.pooling import pool_masks
from drcollab.data.presence import ABSENT, UNKNOWN


def fov_cells(fov: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The field of view ``(B, 1, H, W)`` on α's grid ``size``: cells at least half inside it, ``(B, 1, h, w)`` bool."""
    return F.interpolate(fov.float(), size=size, mode="area") >= 0.5


def topk_pool(alpha: torch.Tensor, cells: torch.Tensor, share: float) -> torch.Tensor:
    """Mean of the top ``share`` of each map's cells inside ``cells``, ``(B, L)``; at least one cell per image.

    Args:
        alpha: Attention maps in [0, 1], ``(B, L, h, w)``.
        cells: Cells that count, ``(B, 1, h, w)`` bool (an image without any counts all its cells).
        share: Share of the counted cells in the top-k.
    """
    b, num_lesions = alpha.shape[:2]
    flat = alpha.flatten(2)  # (B, L, h*w)
    inside = cells.flatten(2).expand_as(flat)  # (B, L, h*w)
    inside = inside | ~inside.any(-1, keepdim=True)
    n = inside[:, 0].sum(-1)  # (B,)
    k = (n.float() * share).ceil().clamp_min(1).long()  # (B,)
    ranked = torch.where(inside, flat, torch.full_like(flat, -1.0)).sort(-1, descending=True).values
    take = torch.arange(flat.shape[-1], device=alpha.device) < k.view(b, 1, 1)  # (B, 1, h*w)
    return (ranked * take).sum(-1) / k.view(b, 1).to(alpha.dtype)  # (B, L)


def presence_loss(alpha: torch.Tensor, presence: torch.Tensor, fov: torch.Tensor, share: float) -> torch.Tensor:
    """BCE of the top-k pooled α against ``presence`` where known, plus BCE(α, 0) on the FOV cells of absent lesions.

    Args:
        alpha: Attention maps in [0, 1], ``(B, L, h, w)``, float32.
        presence: Codes ``(B, L)``: 0 absent, 1 present, -1 unknown (ignored).
        fov: Field of view at the image's size, ``(B, 1, H, W)``.
        share: Top-k share of :func:`topk_pool`.

    Returns:
        The sum of the two means (each over its own elements; a term without any element is 0, still attached).
    """
    cells = fov_cells(fov, alpha.shape[-2:])  # (B, 1, h, w)
    pooled = topk_pool(alpha, cells, share).clamp(1e-6, 1 - 1e-6)  # (B, L)
    known = presence != UNKNOWN
    image_term = F.binary_cross_entropy(pooled, presence.clamp_min(0).to(pooled.dtype), reduction="none")
    image_term = (image_term * known).sum() / known.sum().clamp_min(1)
    absent = (presence == ABSENT)[..., None, None] & cells  # (B, L, h, w)
    pixel_term = -torch.log1p(-alpha.clamp(max=1 - 1e-6))  # BCE(alpha, 0)
    pixel_term = (pixel_term * absent).sum() / absent.sum().clamp_min(1)
    return image_term + pixel_term


def attention_mask_loss(alpha: torch.Tensor, masks: torch.Tensor, fov: torch.Tensor) -> torch.Tensor:
    """Mean BCE of α against ground-truth masks max-pooled to α's grid (a cell is lesion if any pixel is), FOV cells.

    Args:
        alpha: Attention maps in [0, 1] of pixel-labelled images, ``(B, L, h, w)``, float32.
        masks: Their ground truth at the image's size, ``(B, L, H, W)`` in {0, 1}.
        fov: Their fields of view, ``(B, 1, H, W)``.
    """
    target = pool_masks(masks.float(), alpha.shape[-2:])  # (B, L, h, w)
    cells = fov_cells(fov, alpha.shape[-2:]).expand_as(alpha)  # (B, L, h, w)
    bce = F.binary_cross_entropy(alpha.clamp(1e-6, 1 - 1e-6), target, reduction="none")
    return (bce * cells).sum() / cells.sum().clamp_min(1)
