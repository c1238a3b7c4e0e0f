"""The DME head's loss: focal loss or cross-entropy over the images whose risk of macular edema is known.

EyePACS and some synthetic sets give no DME label; their images carry target ``-1`` (:data:`MISSING_DME`) and
are left out of the loss, never counted as DME 0. A batch without a single DME label contributes 0.

The mean is over each (micro-)batch's own labelled images; micro-batches and DDP ranks are then averaged as
parts, so a step is exactly the whole batch's mean when every part holds as many DME labels (e.g. all or none).
"""

from __future__ import annotations

from typing import Literal

import torch

from drcollab.constants import MISSING_DME
from drcollab.losses.focal import focal_loss

DmeLoss = Literal["focal", "ce"]


def dme_loss(logits: torch.Tensor, target: torch.Tensor, kind: DmeLoss = "focal", gamma: float = 2.0) -> torch.Tensor:
    """Mean focal loss (``kind="focal"``, focusing ``gamma``) or cross-entropy over the labelled images.

    Args:
        logits: DME logits ``(B, 3)``.
        target: DME risk 0-2 per image ``(B,)``, or :data:`MISSING_DME` where unknown.
        kind: ``focal`` or ``ce`` (focal with gamma 0).
        gamma: Focusing parameter of the focal loss.

    Returns:
        A scalar; exactly 0 (still connected to ``logits``, so every parameter gets a zero gradient) when no
        image of the batch is labelled.
    """
    if kind not in ("focal", "ce"):
        raise ValueError(f"dme_loss: kind must be 'focal' or 'ce', got {kind!r}")
    if logits.dim() != 2 or target.shape != logits.shape[:1]:
        raise ValueError(
            f"dme_loss: logits must be (B, K) and target (B,), got {tuple(logits.shape)} and {tuple(target.shape)}"
        )
    known = target != MISSING_DME  # (B,)
    if not bool(known.any()):
        return logits.sum() * 0.0
    return focal_loss(logits[known], target[known], gamma if kind == "focal" else 0.0)
