"""Mask BCE (the L_CE term of Eq. 3) with a validity weight per lesion or per pixel."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_bce_with_logits(
    logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """Binary cross-entropy on mask logits, averaged over valid elements only.

    Args:
        logits: Mask logits ``(B, L, H, W)``.
        target: Ground-truth or pseudo masks in [0, 1], same shape (soft targets allowed).
        valid: Validity weights broadcastable to ``(B, L, H, W)``: e.g. ``(B, L, 1, 1)`` per lesion
            (0 = this lesion is not annotated for this image), ``(B, 1, H, W)`` per pixel (0 outside
            the field of view) or the full shape. Bool or float >= 0. ``None`` = all valid.

    Returns:
        ``sum(valid * bce) / sum(valid)``; logits and targets where ``valid == 0`` never reach the
        result (not even as NaN). A batch with no valid element gives 0 (still attached to the graph).
    """
    if logits.shape != target.shape:
        raise ValueError(f"masked_bce_with_logits: logits {tuple(logits.shape)} != target {tuple(target.shape)}")
    if valid is None:
        return F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype))
    try:
        weight = torch.broadcast_to(valid.to(logits.dtype), logits.shape)  # (B, L, H, W)
    except RuntimeError as err:
        raise ValueError(
            f"masked_bce_with_logits: valid {tuple(valid.shape)} does not broadcast to {tuple(logits.shape)}"
        ) from err
    keep = weight > 0
    # Zero invalid inputs before the loss so that NaN/inf there cannot leak into the sum or the gradient.
    safe_logits = torch.where(keep, logits, torch.zeros_like(logits))
    safe_target = torch.where(keep, target.to(logits.dtype), torch.zeros_like(logits))
    bce = F.binary_cross_entropy_with_logits(safe_logits, safe_target, reduction="none")  # (B, L, H, W)
    total = weight.sum()
    return (bce * weight).sum() / total.clamp_min(torch.finfo(weight.dtype).tiny)


def masked_soft_dice(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None,
                     smooth: float = 1.0) -> torch.Tensor:
    """Soft Dice loss per lesion channel, pooled over the batch and the valid pixels, averaged over channels.

    ``1 - (2 sum(p t) + smooth) / (sum(p) + sum(t) + smooth)`` with ``p = sigmoid(logits)``; pooling over the
    batch keeps it defined for a crop without lesions (the smoothing term then only asks for few positives).

    Args:
        logits: ``(B, L, H, W)``.
        target: ``(B, L, H, W)`` in [0, 1].
        valid: Weights broadcastable to ``(B, L, H, W)``, as in :func:`masked_bce_with_logits`.
        smooth: Additive smoothing of numerator and denominator.
    """
    p = torch.sigmoid(logits)
    t = target.to(p.dtype)
    if valid is not None:
        w = torch.broadcast_to(valid.to(p.dtype), p.shape)
        p = torch.where(w > 0, p * w, torch.zeros_like(p))
        t = torch.where(w > 0, t * w, torch.zeros_like(t))
    dims = (0, 2, 3)
    inter = (p * t).sum(dims)  # (L,)
    dice = (2 * inter + smooth) / (p.sum(dims) + t.sum(dims) + smooth)
    return 1 - dice.mean()


def mask_loss(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None, kind: str = "bce",
              dice_weight: float = 1.0, pos_weight: tuple[float, ...] | None = None) -> torch.Tensor:
    """L_CE of Eq. 3 as configured: the paper's BCE (``kind="bce"``), optionally with per-lesion positive weights,
    plus ``dice_weight`` times the soft Dice loss for ``kind="bce_dice"``."""
    if pos_weight is None:
        loss = masked_bce_with_logits(logits, target, valid)
    else:
        loss = _weighted_bce(logits, target, valid, pos_weight)
    if kind == "bce_dice":
        loss = loss + dice_weight * masked_soft_dice(logits, target, valid)
    elif kind != "bce":
        raise ValueError(f"unknown mask loss {kind!r}: use bce or bce_dice")
    return loss


def _weighted_bce(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None,
                  pos_weight: tuple[float, ...]) -> torch.Tensor:
    """BCE whose positive term of lesion ``l`` is weighted ``pos_weight[l]``, averaged over valid elements."""
    pw = torch.tensor(pos_weight, dtype=logits.dtype, device=logits.device).view(1, -1, 1, 1)  # (1, L, 1, 1)
    weight = torch.ones_like(logits) if valid is None else torch.broadcast_to(valid.to(logits.dtype), logits.shape)
    keep = weight > 0
    safe_logits = torch.where(keep, logits, torch.zeros_like(logits))
    safe_target = torch.where(keep, target.to(logits.dtype), torch.zeros_like(logits))
    bce = F.binary_cross_entropy_with_logits(safe_logits, safe_target, reduction="none", pos_weight=pw)
    return (bce * weight).sum() / weight.sum().clamp_min(torch.finfo(weight.dtype).tiny)
