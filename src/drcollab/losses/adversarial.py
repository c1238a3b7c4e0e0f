"""The adversarial terms of Eq. 3 and the total segmentation loss L_Seg = L_Adv + lambda * L_CE.

D's "real" branch is G's masks on pixel-annotated images, D(X^P, G(X^P)); the "fake" branch is
G's masks on image-level-annotated images, D(X^I, G(X^I)). All terms take D's logits and use the
numerically stable ``binary_cross_entropy_with_logits`` (``-log sigmoid(z) = softplus(-z)``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _mean_bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    """Batch mean of BCE towards ``target``; 0 (still attached to the graph) for an empty batch."""
    bce = F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target), reduction="sum")
    return bce / max(logits.numel(), 1)


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """D's loss: ``-E[log D(X^P, G(X^P))] - E[log(1 - D(X^I, G(X^I)))]`` (real -> 1, fake -> 0).

    This is the negative of Eq. 3's adversarial term, which D maximises. Pass G's masks detached. An empty
    branch adds 0 (a grade-matched batch may hold no fake).
    """
    return _mean_bce(real_logits, 1.0) + _mean_bce(fake_logits, 0.0)


def generator_adversarial_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """G's L_Adv, non-saturating form: ``-E[log D(X^I, G(X^I))]`` (G wants its X^I masks judged real).

    Minimising ``log(1 - D)`` as written in Eq. 3 saturates when D is confident; the
    non-saturating form has the same fixed point and strong gradients early on (Goodfellow et al.).
    No fake gives 0.
    """
    return _mean_bce(fake_logits, 1.0)


def segmentation_loss(
    adv: torch.Tensor, ce: torch.Tensor, lambda_ce: float = 10.0, adv_weight: float = 1.0
) -> torch.Tensor:
    """Eq. 3: ``L_Seg = L_Adv + lambda * L_CE`` (lambda = 10 in the paper, ``LossConfig.lambda_ce``), with
    ``L_Adv`` weighted by ``adv_weight`` (``LossConfig.adv_weight``; 1 in the paper)."""
    return adv_weight * adv + lambda_ce * ce
