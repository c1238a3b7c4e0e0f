"""The DME head's loss: focal loss or cross-entropy over the images whose risk of macular edema is known.

EyePACS and some synthetic sets give no DME label; their images carry target ``-1`` (:data:`MISSING_DME`) and
are left out of the loss, never counted as DME 0. A batch without a single DME label contributes 0.

A partial label (Messidor-2 grades only *referable* DME) allows two risks (:data:`DME_TARGET_RISKS`); its loss is
that of their union, ``p_S = p_a + p_b`` of the 3-way softmax in the place of ``p_t``. Against an exact label on the
other side of the threshold this is binary cross-entropy on ``P(risk >= threshold)``, e.g. ``-log(p1 + p2)`` for
"some DME" and ``-log(p0)`` for "none"; with ``kind="focal"`` each term gets the factor ``(1 - p_S) ** gamma``.

The mean is over each (micro-)batch's own labelled images; micro-batches and DDP ranks are then averaged as
parts, so a step is exactly the whole batch's mean when every part holds as many DME labels (e.g. all or none).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from drcollab.constants import DME_TARGET_RISKS, MISSING_DME, NUM_DME

DmeLoss = Literal["focal", "ce"]

# (T, K) bool: row t marks the risks target t allows.
_ALLOWED = torch.tensor([[k in risks for k in range(NUM_DME)] for risks in DME_TARGET_RISKS])


def dme_loss(logits: torch.Tensor, target: torch.Tensor, kind: DmeLoss = "focal", gamma: float = 2.0) -> torch.Tensor:
    """Mean of ``-(1 - p_S) ** gamma * log(p_S)`` over the labelled images, ``p_S`` the probability of the risks
    the image's target allows (its own risk for an exact label); ``kind="ce"`` is ``gamma = 0``.

    Args:
        logits: DME logits ``(B, 3)``.
        target: Per image ``(B,)``: the risk 0-2, a partial label's code (:data:`DME_TARGET_RISKS`), or
            :data:`MISSING_DME` where unknown.
        kind: ``focal`` or ``ce`` (focal with gamma 0).
        gamma: Focusing parameter of the focal loss.

    Returns:
        A scalar; exactly 0 (still connected to ``logits``, so every parameter gets a zero gradient) when no
        image of the batch is labelled.
    """
    if kind not in ("focal", "ce"):
        raise ValueError(f"dme_loss: kind must be 'focal' or 'ce', got {kind!r}")
    if logits.dim() != 2 or logits.shape[1] != NUM_DME or target.shape != logits.shape[:1]:
        raise ValueError(f"dme_loss: logits must be (B, {NUM_DME}) and target (B,), got {tuple(logits.shape)} and "
                         f"{tuple(target.shape)}")
    if bool(((target < MISSING_DME) | (target >= len(DME_TARGET_RISKS))).any()):
        raise ValueError(f"dme_loss: targets must lie in {MISSING_DME}..{len(DME_TARGET_RISKS) - 1}, got "
                         f"{sorted(set(target.tolist()))}")
    known = target != MISSING_DME  # (B,)
    if not bool(known.any()):
        return logits.sum() * 0.0
    allowed = _ALLOWED.to(logits.device)[target[known].long()]  # (N, K)
    log_p = F.log_softmax(logits[known].float(), dim=1)  # (N, K)
    log_p_set = torch.logsumexp(log_p.masked_fill(~allowed, -torch.inf), dim=1)  # (N,) log p_S
    weight = (1 - log_p_set.exp()) ** (gamma if kind == "focal" else 0.0)
    return -(weight * log_p_set).mean()
