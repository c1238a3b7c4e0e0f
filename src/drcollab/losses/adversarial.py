"""The adversarial terms of Eq. 3 and the total segmentation loss L_Seg = L_Adv + lambda * L_CE.

D's "real" branch is G's masks on pixel-annotated images, D(X^P, G(X^P)); the "fake" branch is
G's masks on image-level-annotated images, D(X^I, G(X^I)). All terms take D's logits and use the
numerically stable ``binary_cross_entropy_with_logits`` (``-log sigmoid(z) = softplus(-z)``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """D's loss: ``-E[log D(X^P, G(X^P))] - E[log(1 - D(X^I, G(X^I)))]`` (real -> 1, fake -> 0).

    This is the negative of Eq. 3's adversarial term, which D maximises. Pass G's masks detached.
    """
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real + fake


def generator_adversarial_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """G's L_Adv, non-saturating form: ``-E[log D(X^I, G(X^I))]`` (G wants its X^I masks judged real).

    Minimising ``log(1 - D)`` as written in Eq. 3 saturates when D is confident; the
    non-saturating form has the same fixed point and strong gradients early on (Goodfellow et al.).
    """
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def segmentation_loss(adv: torch.Tensor, ce: torch.Tensor, lambda_ce: float = 10.0) -> torch.Tensor:
    """Eq. 3: ``L_Seg = L_Adv + lambda * L_CE`` (lambda = 10 in the paper, ``LossConfig.lambda_ce``)."""
    return adv + lambda_ce * ce
