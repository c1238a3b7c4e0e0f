"""Stage 2's pseudo masks: the targets and per-pixel weights of G's mask loss on X^I, and the α they are made of.

The rule (``joint.pseudo_mask``):

- ``attention`` (the paper): α up-sampled bilinearly to G's masks. α lives on f_low's stride-4 grid and the
  masks reach it max-pooled, so a 1-px microaneurysm comes back as a ~12-px target: G learns the dilated
  target, and its next masks are larger still.
- ``refined``: G's own lesion pixels (mask >= 0.5) where the up-sampled α agrees (>= 0.5), at G's resolution.
  α is only a gate, so a target is never larger than G's own mask (no dilation), and each pixel is weighted by
  how likely α and G agree, ``m α + (1 - m)(1 - α)``: pixels where they disagree count less, as a teacher that
  contradicts itself should.
- ``labels``: no target from α or G at all: a lesion the image's labels rule out (presence code 0) has target 0
  everywhere at full weight, every other lesion has weight 0. The control that tells what the labels alone give
  G (the negatives of 134 healthy eyes, of the DME-0 images' hard exudates) from what the pseudo masks add.

With ``joint.zero_absent`` a lesion the image's labels rule out (presence code 0) has target 0 everywhere at
full weight, whatever α and G say. Every weight is 0 outside the field of view. All outputs are detached.

Where α comes from (``training/steps.py``, the stage's ``Route``): with G on the grader's images (one size) it is
the grader's training pass's α; with G on crops at its own size it is a *teacher pass* (:func:`teacher_attention`:
the grader in eval mode, without gradient, on the whole un-augmented image), sampled at each crop's pixels
(:func:`alpha_in_crops`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from drcollab.data.presence import ABSENT
from drcollab.data.transforms import image_to_tensor
from drcollab.models.checkpoint import unwrap
from drcollab.models.mask_path import dequantise
from drcollab.training.config import JointConfig

G_THRESHOLD = 0.5  # G's own decision threshold: a pixel is one of G's lesion pixels at mask >= 0.5
ALPHA_THRESHOLD = 0.5  # refined: α's gate


def upsampled(attention: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """α ``(B, L, h, w)`` on f_low's grid, bilinearly up-sampled to ``size``, ``(B, L, H, W)`` float."""
    return F.interpolate(attention.float(), size=size, mode="bilinear", align_corners=False)


def pseudo_masks(attention: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """The paper's (``attention``) pseudo masks: α up-sampled to ``masks``' size ``(B, L, H, W)``, detached."""
    return upsampled(attention, masks.shape[-2:]).detach()


def refined_masks(attention: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``refined`` targets and their confidence, both ``(B, L, H, W)`` like ``masks``, detached.

    Args:
        attention: α, ``(B, L, h, w)``.
        masks: G's lesion probabilities, ``(B, L, H, W)``, at G's resolution.
    """
    alpha = upsampled(attention.detach(), masks.shape[-2:])  # (B, L, H, W)
    m = masks.detach().float()
    target = ((m >= G_THRESHOLD) & (alpha >= ALPHA_THRESHOLD)).float()
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
        attention: α, ``(B, L, h, w)`` on any grid spanning G's input (f_low's, or a crop's pixels).
        masks: G's lesion probabilities, ``(B, L, H, W)``.
        fov: The field of view, ``(B, 1, H, W)`` bool.
        presence: Presence codes ``(B, L)`` (0 absent, 1 present, -1 unknown); needed for ``zero_absent``.
        j: ``pseudo_mask`` and ``zero_absent`` (``labels`` implies it).
    """
    weight = fov.float()
    if j.pseudo_mask == "labels":
        absent = _ruled_out(presence, "joint.pseudo_mask 'labels'")
        return torch.zeros_like(masks).detach(), (fov.float() * absent).detach()  # (B, L, H, W) both
    if j.pseudo_mask == "refined":
        target, confidence = refined_masks(attention, masks)
        weight = weight * confidence
    else:
        target = pseudo_masks(attention, masks)
    if j.zero_absent:
        absent = _ruled_out(presence, "joint.zero_absent")
        target = torch.where(absent, torch.zeros_like(target), target)
        weight = torch.where(absent, fov.float(), torch.broadcast_to(weight, target.shape))
    return target, weight


def alpha_in_crops(attention: torch.Tensor, box: torch.Tensor, flip: torch.Tensor, crop: int) -> torch.Tensor:
    """α ``(B, L, h, w)`` of whole images, sampled bilinearly at the pixels of each image's crop: ``(B, L, c, c)``.

    Equal to up-sampling α to the image's size (``F.interpolate``, bilinear, ``align_corners=False``: the paper's
    up-sampling, :func:`upsampled`) and cutting out the crop, then flipping it, without making the full-size map.
    Outside the image α is continued from its border (those pixels are outside the FOV).

    Args:
        attention: α on f_low's grid, which spans the whole image.
        box: ``(B, 4)``: top, left and side of each crop over the image side (``CropDataset``).
        flip: ``(B, 2)``: vertical and horizontal flips of each crop (1.0 = flipped).
        crop: The crop side in pixels.
    """
    b = len(attention)
    top, left, side = box[:, 0], box[:, 1], box[:, 2]
    sign = 1 - 2 * flip.to(box.dtype)  # (B, 2): -1 where flipped
    theta = torch.zeros(b, 2, 3, dtype=torch.float32, device=attention.device)
    # Output pixel u in (-1, 1) (align_corners=False) sits at top + side * (u + 1) / 2 of the image, in (0, 1);
    # as a grid coordinate in (-1, 1): side * u + 2 * top + side - 1. A flip reverses u.
    theta[:, 0, 0] = side * sign[:, 1]
    theta[:, 0, 2] = 2 * left + side - 1
    theta[:, 1, 1] = side * sign[:, 0]
    theta[:, 1, 2] = 2 * top + side - 1
    grid = F.affine_grid(theta, [b, attention.shape[1], crop, crop], align_corners=False)
    return F.grid_sample(attention.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)


@torch.no_grad()
def teacher_attention(grader: nn.Module, batch: dict) -> torch.Tensor:
    """The grader's α on the whole un-augmented images of a crop batch, in eval mode, without gradient.

    Eval mode: BatchNorm uses its running statistics and leaves them alone, so the pass changes nothing in the
    grader; it runs on the grader's own module, outside DDP, whose forward would expect a backward.
    """
    c = unwrap(grader)
    was_training = c.training
    c.eval()
    masks = batch["teacher_masks"]
    masks = dequantise(masks) if masks.dtype == torch.uint8 else masks.float()
    image = batch["teacher_image"]
    image = image_to_tensor(image) if image.dtype == torch.uint8 else image
    out = c(image, masks, batch.get("teacher_stats"))
    c.train(was_training)
    return out.attention.float().detach()
