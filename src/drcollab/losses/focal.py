"""Multi-class focal loss (Lin et al., TPAMI 2018), the paper's L_Cls for grading (Sec. 3.3)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    gamma: float = 2.0,
    alpha: Sequence[float] | torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean over the batch of ``-alpha_t * (1 - p_t)**gamma * log(p_t)``, with ``p = softmax(logits)``.

    Args:
        logits: Grade logits ``(B, K)``.
        target: Integer grades ``(B,)`` in ``[0, K)``.
        gamma: Focusing parameter; ``gamma = 0`` and no alpha is plain cross-entropy.
        alpha: Optional per-class weights (length K); ``alpha_t`` is the weight of each sample's class.
            The mean is over samples (not normalised by the weights).
    """
    if logits.dim() != 2 or target.shape != logits.shape[:1]:
        raise ValueError(
            f"focal_loss: logits must be (B, K) and target (B,), got {tuple(logits.shape)} and {tuple(target.shape)}"
        )
    if gamma < 0:
        raise ValueError(f"focal_loss: gamma must be >= 0, got {gamma}")
    log_p_t = F.log_softmax(logits.float(), dim=1).gather(1, target.long()[:, None]).squeeze(1)  # (B,)
    p_t = log_p_t.exp()
    loss = -((1 - p_t) ** gamma) * log_p_t  # (B,)
    if alpha is not None:
        alpha = torch.as_tensor(alpha, dtype=loss.dtype, device=loss.device)
        if alpha.shape != logits.shape[1:]:
            raise ValueError(
                f"focal_loss: alpha needs one weight per class ({logits.shape[1]}), got {tuple(alpha.shape)}"
            )
        loss = alpha[target.long()] * loss
    return loss.mean()
