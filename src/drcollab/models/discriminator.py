"""Multi-lesion discriminator D of Sec. 3.2.

D sees an image concatenated with L lesion masks and says whether the masks were supervised by
real ground truth (G's output on pixel-annotated images X^P) or by pseudo masks (G's output on
image-level-annotated images X^I). Five tuples of two 3x3 conv-BN-ReLU layers and a stride-2
max-pool, global average pooling, one dense layer. With ``sees_image: false`` D reads the masks alone.
"""

from __future__ import annotations

import torch
from torch import nn

from drcollab.config import DiscriminatorConfig
from drcollab.models.blocks import FeatureTuple

MIN_SIZE = 32  # five stride-2 pools


class LesionDiscriminator(nn.Module):
    """D: ``(image (B, C, H, W), masks (B, L, H, W))`` -> logit ``(B,)`` of "masks came from real ground truth".

    ``masks`` are mask probabilities (G's sigmoid output), not logits. The sigmoid of the output
    lives in the loss (``losses/adversarial.py``). In training, call D once on the real and fake
    halves concatenated along the batch: train-mode batch norm over an all-real or all-fake batch
    normalises away the very difference D has to detect (``tests/models/test_model_convergence.py``).
    """

    def __init__(self, config: DiscriminatorConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or DiscriminatorConfig()
        layers: list[nn.Module] = []
        channels = (config.in_channels if config.sees_image else 0) + config.num_lesions
        for width in config.widths:
            layers += [FeatureTuple(channels, width, separable=False, shortcut=False), nn.MaxPool2d(2)]
            channels = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dense = nn.Linear(channels, 1)

    def forward(self, image: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        if image.shape[-2:] != masks.shape[-2:] or image.shape[0] != masks.shape[0]:
            raise ValueError(f"LesionDiscriminator: image {tuple(image.shape)} and masks {tuple(masks.shape)} differ")
        expected = (self.config.in_channels, self.config.num_lesions)
        if (image.shape[1], masks.shape[1]) != expected:
            raise ValueError(
                f"LesionDiscriminator expects {expected[0]} image and {expected[1]} mask channels, "
                f"got {image.shape[1]} and {masks.shape[1]}"
            )
        if min(image.shape[-2:]) < MIN_SIZE:
            raise ValueError(f"LesionDiscriminator input {tuple(image.shape[-2:])} is smaller than {MIN_SIZE} px")
        x = torch.cat([image, masks], dim=1) if self.config.sees_image else masks  # (B, C + L or L, H, W)
        x = self.pool(self.features(x)).flatten(1)  # (B, widths[-1])
        return self.dense(x).squeeze(1)  # (B,)
