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
