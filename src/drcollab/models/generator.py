"""Multi-lesion mask generator G: the Xception U-Net of Sec. 3.2 (yellow part of Fig. 2).

Nine feature-mapping tuples: five on the way down (x0..x4, x4 is the bottleneck) and four on the
way up (u3..u0). Tuple x0 uses normal 3x3 convolutions; every other tuple is an Xception module
(two separable 3x3 convolutions with BN and ReLU, plus a 1x1-convolution shortcut). The ``conv``
variant (the paper's CE1) is the same network with normal 3x3 convolutions in every tuple.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from drcollab.config import GeneratorConfig
from drcollab.models.blocks import Down, FeatureTuple, Up
from drcollab.models.memory import checkpointed

# Four 2x2 max-pools: H and W must be multiples of 2**4.
SIZE_MULTIPLE = 16


def check_input_size(height: int, width: int, multiple: int = SIZE_MULTIPLE) -> None:
    """Raise a ValueError naming the nearest valid sizes when H or W is not a multiple of ``multiple``."""
    bad = []
    for name, size in (("height", height), ("width", width)):
        if size % multiple:
            low = max(multiple, size // multiple * multiple)
            high = (size // multiple + 1) * multiple
            bad.append(f"{name} {size} (nearest valid: {low} or {high})")
    if bad:
        raise ValueError(f"LesionGenerator input {height}x{width} must be divisible by {multiple}: " + "; ".join(bad))


def init_head_prior(head: nn.Conv2d, prior: tuple[float, ...]) -> None:
    """Start output ``l`` at probability ``prior[l]``: bias ``logit(p)``, weights N(0, 0.01) (RetinaNet, Sec. 4.1).

    With PyTorch's default initialisation G starts at p ~ 0.5 for lesions that cover under 1 % of the pixels, and
    its first few hundred steps only learn that prior.
    """
    p = torch.tensor(prior, dtype=torch.float32)
    with torch.no_grad():
        nn.init.normal_(head.weight, std=0.01)
        head.bias.copy_(torch.log(p / (1 - p)))


class LesionGenerator(nn.Module):
    """G: image ``(B, C, H, W)`` -> lesion mask logits ``(B, L, H, W)``.

    Returns logits; the sigmoid lives in the prediction code and in BCE-with-logits. With ``checkpointing``
    (a training setting, ``runtime.activation_checkpointing``, not part of the config) each tuple keeps only
    its inputs and output and recomputes the rest in the backward pass, one tuple at a time; the
    full-resolution ones (x0, u0) hold most of the activations.
    """

    checkpointing: bool = False

    def __init__(self, config: GeneratorConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or GeneratorConfig()
        sep = config.variant == "xception"
        w0, w1, w2, w3, w4 = config.widths
        # Encoder: x0 is a plain double convolution; the rest are (separable) tuples with shortcuts.
        self.enc0 = FeatureTuple(config.in_channels, w0, separable=False, shortcut=False)
        self.down1 = Down(w0, w1, separable=sep, shortcut=True)
        self.down2 = Down(w1, w2, separable=sep, shortcut=True)
        self.down3 = Down(w2, w3, separable=sep, shortcut=True)
        self.down4 = Down(w3, w4, separable=sep, shortcut=True)  # bottleneck
        # Decoder: up-sample, concatenate the skip, then a tuple; each level mirrors the encoder's width.
        self.up3 = Up(w4, w3, w3, config.upsample, separable=sep, shortcut=True)
        self.up2 = Up(w3, w2, w2, config.upsample, separable=sep, shortcut=True)
        self.up1 = Up(w2, w1, w1, config.upsample, separable=sep, shortcut=True)
        self.up0 = Up(w1, w0, w0, config.upsample, separable=sep, shortcut=True)
        # The paper's "L convolution layers", one output map per lesion, as a single 1x1 conv.
        self.head = nn.Conv2d(w0, config.num_lesions, 1)
        if config.head_prior is not None:
            init_head_prior(self.head, config.head_prior)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Mask logits ``(B, L, H, W)`` for an image ``(B, C, H, W)`` with H, W divisible by 16."""
        check_input_size(image.shape[-2], image.shape[-1])
        level = self._level
        x0 = level(self.enc0, image)  # (B, w0, H, W)
        x1 = level(self.down1, x0)  # (B, w1, H/2, W/2)
        x2 = level(self.down2, x1)  # (B, w2, H/4, W/4)
        x3 = level(self.down3, x2)  # (B, w3, H/8, W/8)
        x4 = level(self.down4, x3)  # (B, w4, H/16, W/16)
        u3 = level(self.up3, x4, x3)  # (B, w3, H/8, W/8)
        u2 = level(self.up2, u3, x2)  # (B, w2, H/4, W/4)
        u1 = level(self.up1, u2, x1)  # (B, w1, H/2, W/2)
        u0 = level(self.up0, u1, x0)  # (B, w0, H, W)
        return self.head(u0)  # (B, L, H, W) logits

    def _level(self, tuple_: Callable[..., torch.Tensor], *inputs: torch.Tensor) -> torch.Tensor:
        """One feature-mapping tuple; with ``checkpointing`` only its inputs and output are kept for backward."""
        return checkpointed(self, tuple_, *inputs) if self.checkpointing else tuple_(*inputs)
