"""Stage 2's pseudo masks for G's mask loss on X^I: targets and per-pixel weights (``joint.pseudo_mask``).

- ``attention`` (the paper): α up-sampled bilinearly to G's masks. α lives on f_low's stride-4 grid and the
  masks reach it max-pooled, so a 1-px microaneurysm comes back as a ~12-px target: G learns the dilated
  target, and its next masks are larger still.
- ``gated``: that times G's own masks; α can remove lesion pixels but not add any.
- ``refined``: G's own lesion pixels (mask >= 0.5) where the up-sampled α agrees (>= ``pseudo_threshold``,
  0.5 by default), at G's resolution. α is only a gate, so a target is never larger than G's own mask (no
  dilation), and each pixel is weighted by how likely α and G agree, ``m α + (1 - m)(1 - α)``: pixels where
  they disagree count less, as a teacher that contradicts itself should.
- ``labels``: no target from α or G at all: a lesion the image's labels rule out (presence code 0) has target 0
  everywhere at full weight, every other lesion has weight 0. The control that tells what the labels alone give
  G (the negatives of 134 healthy eyes, of the DME-0 images' hard exudates) from what the pseudo masks add.

``joint.pseudo_gate: relative`` divides α by its image's top-k pooled α (per lesion, ``presence_topk``, at most 1)
before any of these (:func:`gate_attention`): the grading loss cannot set α's overall level (BatchNorm normalises
it away) and a presence loss with few "present" targets pulls it under 0.5 everywhere, so an absolute gate ends
with empty targets; relative to its own peak, α keeps its shape. Whether the lesion is there at all is then the
labels' (``zero_absent``) and G's (its mask >= 0.5) to say.

With ``joint.zero_absent`` a lesion the image's labels rule out (presence code 0) has target 0 everywhere at
full weight, whatever α and G say. Every weight is 0 outside the field of view. All outputs are detached.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from drcollab.data.presence import ABSENT
from drcollab.losses.presence import fov_cells, topk_pool
from drcollab.training.config import JointConfig

G_THRESHOLD = 0.5  # G's own decision threshold: a pixel is one of G's lesion pixels at mask >= 0.5


def upsampled(attention: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """α ``(B, L, h, w)`` on f_low's grid, bilinearly up-sampled to ``size``, ``(B, L, H, W)`` float."""
    return F.interpolate(attention.float(), size=size, mode="bilinear", align_corners=False)


def relative_attention(attention: torch.Tensor, fov: torch.Tensor, share: float) -> torch.Tensor:
    """α over its top-k pooled value inside the FOV (:func:`~drcollab.losses.presence.topk_pool`), at most 1, detached.

    Args:
        attention: α ``(B, L, h, w)`` of whole images.
        fov: Their fields of view, ``(B, 1, H, W)`` at any size.
        share: The top-k share (``joint.presence_topk``).
    """
    alpha = attention.detach().float()
    scale = topk_pool(alpha, fov_cells(fov, alpha.shape[-2:]), share)  # (B, L)
    return (alpha / scale.clamp_min(1e-6)[..., None, None]).clamp(max=1.0)


def gate_attention(attention: torch.Tensor, fov: torch.Tensor, j: JointConfig) -> torch.Tensor:
    """The α the pseudo masks are made of: as it is (``pseudo_gate: absolute``, the paper) or relative to its peak.

    Takes α of whole images and their FOVs, so it runs before α is cut to crops (``training/two_size.py``).
    """
    return relative_attention(attention, fov, j.presence_topk) if j.pseudo_gate == "relative" else attention


def pseudo_masks(
    attention: torch.Tensor, masks: torch.Tensor, mode: str = "attention", threshold: float | None = None
) -> torch.Tensor:
    """The ``attention`` and ``gated`` pseudo masks, detached, ``(B, L, H, W)`` like ``masks``.

    Args:
        attention: The grader's alpha maps, ``(B, L, h, w)`` on f_low's grid.
        masks: G's lesion probabilities on the same images, ``(B, L, H, W)``.
        mode: ``attention`` = alpha up-sampled bilinearly to the image (the paper); ``gated`` = that
            times G's own masks, so the attention can remove lesion pixels but not add any.
        threshold: Binarise at this value (``None``: soft targets).
    """
    pseudo = upsampled(attention, masks.shape[-2:])
    if mode == "gated":
        pseudo = pseudo * masks
    pseudo = pseudo.detach()
    return pseudo if threshold is None else (pseudo > threshold).float()


def refined_masks(
    attention: torch.Tensor, masks: torch.Tensor, threshold: float | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``refined`` targets and their confidence, both ``(B, L, H, W)`` like ``masks``, detached.

    Args:
        attention: α, ``(B, L, h, w)``.
        masks: G's lesion probabilities, ``(B, L, H, W)``, at G's resolution.
        threshold: α's gate (``None``: 0.5).
    """
    alpha = upsampled(attention.detach(), masks.shape[-2:])  # (B, L, H, W)
    m = masks.detach().float()
    target = ((m >= G_THRESHOLD) & (alpha >= (threshold or 0.5))).float()
    confidence = m * alpha + (1 - m) * (1 - alpha)  # P(alpha and G agree), the two read as independent
    return target, confidence


def _ruled_out(presence: torch.Tensor | None, option: str) -> torch.Tensor:
    """Where the labels rule a lesion out (presence code 0), ``(B, L, 1, 1)`` bool; ``option`` names who needs it."""
    if presence is None:
        raise ValueError(f"{option} needs the X^I batch's 'presence' codes (FundusDataset, labels=grade)")
    return (presence == ABSENT)[..., None, None]


def pseudo_targets(
    attention: torch.Tensor, masks: torch.Tensor, fov: torch.Tensor, presence: torch.Tensor | None, j: JointConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets ``(B, L, H, W)`` and weights (``(B, 1, H, W)`` = the FOV, or ``(B, L, H, W)``) for G's loss on X^I.

    Args:
        attention: α, ``(B, L, h, w)``.
        masks: G's lesion probabilities, ``(B, L, H, W)``.
        fov: The field of view, ``(B, 1, H, W)`` bool.
        presence: Presence codes ``(B, L)`` (0 absent, 1 present, -1 unknown); needed for ``zero_absent``.
        j: ``pseudo_mask``, ``pseudo_threshold`` and ``zero_absent`` (``labels`` implies it).
    """
    weight = fov.float()
    if j.pseudo_mask == "labels":
        absent = _ruled_out(presence, "joint.pseudo_mask 'labels'")
        return torch.zeros_like(masks).detach(), (fov.float() * absent).detach()  # (B, L, H, W) both
    if j.pseudo_mask == "refined":
        target, confidence = refined_masks(attention, masks, j.pseudo_threshold)
        weight = weight * confidence
    else:
        target = pseudo_masks(attention, masks, j.pseudo_mask, j.pseudo_threshold)
    if j.zero_absent:
        absent = _ruled_out(presence, "joint.zero_absent")
        target = torch.where(absent, torch.zeros_like(target), target)
        weight = torch.where(absent, fov.float(), torch.broadcast_to(weight, target.shape))
    return target, weight
