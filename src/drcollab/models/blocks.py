"""Small named blocks from which the three networks are built (paper Figs. 2 and 3).

A *feature-mapping tuple* is the unit of the paper's generator and discriminator: two 3x3
convolutions, each followed by batch norm and ReLU. The generator's Xception tuple makes both
convolutions depthwise-separable and adds a 1x1-convolution shortcut (Chollet's Xception module).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SeparableConv2d(nn.Sequential):
    """Depthwise 3x3 convolution (one filter per channel) then a pointwise 1x1 projection."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, in_channels, 3, padding=1, groups=in_channels, bias=False),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
        )


def conv_bn_relu(in_channels: int, out_channels: int, separable: bool = False) -> nn.Sequential:
    """A 3x3 'same' convolution (normal or separable), batch norm, ReLU; the bias is left to the norm."""
    if separable:
        conv: nn.Module = SeparableConv2d(in_channels, out_channels)
    else:
        conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class FeatureTuple(nn.Module):
    """Two conv-BN-ReLU layers, optionally with a 1x1-convolution shortcut added to their output.

    With ``separable=True, shortcut=True`` this is the paper's Xception tuple; with
    ``separable=False, shortcut=False`` it is U-Net's double convolution.
    """

    def __init__(self, in_channels: int, out_channels: int, separable: bool, shortcut: bool) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.body = nn.Sequential(
            conv_bn_relu(in_channels, out_channels, separable),
            conv_bn_relu(out_channels, out_channels, separable),
        )
        self.shortcut = (
            nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))
            if shortcut
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return out if self.shortcut is None else out + self.shortcut(x)


class Down(nn.Sequential):
    """Encoder step: 2x2 max-pool, then a feature tuple (halves H and W)."""

    def __init__(self, in_channels: int, out_channels: int, separable: bool, shortcut: bool) -> None:
        super().__init__(nn.MaxPool2d(2), FeatureTuple(in_channels, out_channels, separable, shortcut))
        self.out_channels = out_channels


class Up(nn.Module):
    """Decoder step: up-sample x2, concatenate the encoder skip, then a feature tuple.

    ``mode="bilinear"`` up-samples without weights and keeps the channels; ``mode="transpose"`` is
    U-Net's 2x2 stride-2 transposed convolution, mapping to the skip's channel count.
    """

    def __init__(
        self, in_channels: int, skip_channels: int, out_channels: int, mode: str, separable: bool, shortcut: bool
    ) -> None:
        super().__init__()
        self.mode = mode
        if mode == "transpose":
            self.up: nn.Module | None = nn.ConvTranspose2d(in_channels, skip_channels, 2, stride=2)
            up_channels = skip_channels
        elif mode == "bilinear":
            self.up = None
            up_channels = in_channels
        else:
            raise ValueError(f"up-sampling mode {mode!r}: expected 'bilinear' or 'transpose'")
        self.tuple = FeatureTuple(up_channels + skip_channels, out_channels, separable, shortcut)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        if self.up is None:
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        else:
            x = self.up(x)
        return self.tuple(torch.cat([x, skip], dim=1))


class LesionAttention(nn.Module):
    """The lesion attention model att(f_low, f_high, m) of Eqs. 4-6, one branch per lesion.

    Eq. 5: ``f_low_att_l = ReLU(W_low_l * concat(m_l, f_low) + b_low_l)`` (a 1x1 conv per lesion).
    ``f_high`` is a global context vector: the top feature, global-average-pooled, then a 1x1 conv
    to ``att_channels``; it is broadcast over space. Eq. 6:
    ``alpha_l = Sigmoid(W_high_l * (f_low_att_l ⊙ f_high) + b_high_l)`` (a 1x1 conv per lesion to 1 map).
    """

    def __init__(self, low_channels: int, top_channels: int, att_channels: int, num_lesions: int) -> None:
        super().__init__()
        self.low = nn.ModuleList(nn.Conv2d(1 + low_channels, att_channels, 1) for _ in range(num_lesions))
        self.context = nn.Conv2d(top_channels, att_channels, 1)
        self.high = nn.ModuleList(nn.Conv2d(att_channels, 1, 1) for _ in range(num_lesions))

    @torch.no_grad()
    def init_from_masks(self, gain: float = 10.0) -> None:
        """Start as a calibrated copy of the masks: ``alpha_l = sigmoid(gain * (m_l - 0.5))``.

        Channel 0 of every branch carries m_l through Eq. 5 (weight 1 on the mask, 0 on f_low), the
        context vector is 1 on channel 0, and W_high reads only channel 0. The other channels keep
        their random W_low but get a zero W_high (like a zero-initialised residual branch), so the
        grading loss can grow refinements from image features without starting from noise.
        """
        for w_low, w_high in zip(self.low, self.high, strict=True):
            w_low.weight[0].zero_()
            w_low.weight[0, 0] = 1.0
            w_low.bias[0] = 0.0
            w_high.weight.zero_()
            w_high.weight[0, 0] = gain
            w_high.bias.fill_(-gain / 2)
        self.context.weight[0].zero_()
        self.context.bias[0] = 1.0

    def forward(self, f_low: torch.Tensor, f_top: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Attention maps ``(B, L, h, w)`` in [0, 1].

        Args:
            f_low: Low-level features ``(B, C_low, h, w)``.
            f_top: Top-stage features ``(B, C_top, h', w')``.
            masks: Lesion masks already at f_low's resolution ``(B, L, h, w)``.
        """
        f_high = self.context(F.adaptive_avg_pool2d(f_top, 1))  # (B, C_att, 1, 1)
        alphas = []
        for lesion, (w_low, w_high) in enumerate(zip(self.low, self.high, strict=True)):
            m_l = masks[:, lesion : lesion + 1]  # (B, 1, h, w)
            f_low_att = F.relu(w_low(torch.cat([m_l, f_low], dim=1)))  # (B, C_att, h, w), Eq. 5
            alphas.append(torch.sigmoid(w_high(f_low_att * f_high)))  # (B, 1, h, w), Eq. 6
        return torch.cat(alphas, dim=1)  # (B, L, h, w)
