"""Losses: focal loss for grading (and DME, left out where unknown), masked BCE and the adversarial terms of Eq. 3
for segmentation."""

from drcollab.losses.adversarial import discriminator_loss, generator_adversarial_loss, segmentation_loss
from drcollab.losses.dme import dme_loss
from drcollab.losses.focal import focal_loss
from drcollab.losses.segmentation import mask_loss, masked_bce_with_logits, masked_soft_dice

__all__ = [
    "dme_loss",
    "discriminator_loss",
    "focal_loss",
    "generator_adversarial_loss",
    "mask_loss",
    "masked_bce_with_logits",
    "masked_soft_dice",
    "segmentation_loss",
]
