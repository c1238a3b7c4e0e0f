"""Stage 2 with G at its own size (``data.seg_size`` > ``data.preprocess.size``): G on crops, the grader on images.

At the grader's size (384 px in ``configs/cpu``) a microaneurysm is under one pixel; G's own size (1152 px) has 9x
the pixels, too many to run G on whole grading images at every step on a CPU, and the grader was trained on G's
masks at G's size pooled to its grid (the one mask path, ``training/mask_inputs.py``). So in this mode
(``TrainConfig.two_size_joint``):

- the grader trains as it does beside a frozen G: X^I at its size, augmented, with the pooled masks and statistics
  of the G the stage started with, precomputed once;
- G trains on crops at its own size: X^P crops as in stage 1a (``seg_pretrain.augment``) and crops of the X^I
  images (:class:`CropDataset`: ``seg_pretrain.augment.crop`` square, centred on a field-of-view pixel, flipped),
  whose pseudo masks come from a *teacher pass*: the grader in eval mode, without gradient, on the whole
  un-augmented image (:func:`teacher_attention`); its α is sampled at the crop's pixels (:func:`alpha_in_crops`,
  what up-sampling α bilinearly to G's size and cutting out the crop would give) and turned into targets with G's
  own masks of the crop (``training/pseudo.py``);
- D judges (crop, G's masks) pairs: X^P crops real, X^I crops fake (``joint.disc_match`` as usual).

No gradient links the grader and G within the stage, so ``joint.grade_to_generator`` must be false: what is left
of the collaboration is the paper's semi-supervised loop, the grader's attention teaching G.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from drcollab.data.crops import window
from drcollab.data.presence import PresenceConfig, lesion_presence
from drcollab.data.records import Record
from drcollab.data.transforms import BACKGROUND, image_to_tensor
from drcollab.models.checkpoint import unwrap
from drcollab.models.mask_path import dequantise
from drcollab.training.datasets import GraderInputLoader, Loader


class CropDataset(Dataset):
    """Crops of grade-labelled images at G's size, with what the teacher pass needs of the whole image.

    Items are looked up by ``(index, seed)`` pairs (:class:`~drcollab.training.sampling.EpochSampler`) and hold:
    ``image`` ``(3, c, c)`` uint8 and ``fov`` ``(1, c, c)`` bool, the crop at G's size (a window of side ``crop``
    centred on a field-of-view pixel, padded with the background where it leaves the image, then flipped);
    ``box`` ``(4,)`` float32 = top, left, side of the crop in G-size pixels of the unflipped image, over the image
    side, and ``flip`` ``(2,)`` float32 = (vertical, horizontal) flips as 1.0; the teacher's ``teacher_image``
    ``(3, s, s)`` uint8 (the grader's size, un-augmented), its ``teacher_fov`` ``(1, s, s)`` bool,
    ``teacher_masks`` ``(L, s, s)`` uint8 and, when the
    mask path gives them, ``teacher_stats`` ``(S,)``; and ``grade``, ``dme``, ``presence`` as
    :class:`~drcollab.training.datasets.FundusDataset` gives them.
    """

    def __init__(
        self, records: Sequence[Record], load_seg: Loader, load_grader: Loader, g_inputs: GraderInputLoader,
        crop: int, presence: PresenceConfig | None = None, flips: bool = True,
    ) -> None:
        missing = [r.name for r in records if r.grade is None]
        if missing:
            raise ValueError(f"{len(missing)} images lack a grade (first: {missing[0]}); check the data sources")
        self.records = list(records)
        self.load_seg, self.load_grader, self.g_inputs = load_seg, load_grader, g_inputs
        self.crop, self.flips = crop, flips
        self.presence = [lesion_presence(r, presence) for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, seed = key if isinstance(key, tuple) else (key, 0)
        record = self.records[index]
        rng = np.random.default_rng(seed)
        seg = self.load_seg(record)  # at G's size
        side = seg.fov.shape[0]
        ys, xs = np.nonzero(seg.fov)
        if len(ys):
            k = int(rng.integers(len(ys)))
            centre = int(ys[k]), int(xs[k])
        else:  # no field of view found: anywhere
            centre = int(rng.integers(side)), int(rng.integers(side))
        image = window(seg.image.transpose(2, 0, 1), centre, self.crop, BACKGROUND)  # (3, c, c)
        fov = window(seg.fov[None], centre, self.crop, 0)  # (1, c, c)
        flip = rng.random(2) < 0.5 if self.flips else np.zeros(2, dtype=bool)
        for axis, on in zip((1, 2), flip, strict=True):
            if on:
                image, fov = np.flip(image, axis), np.flip(fov, axis)
        top, left = centre[0] - self.crop // 2, centre[1] - self.crop // 2
        teacher = self.load_grader(record)
        masks, stats = self.g_inputs(record)
        item: dict[str, Any] = {
            "image": torch.from_numpy(np.ascontiguousarray(image)),
            "fov": torch.from_numpy(np.ascontiguousarray(fov)).bool(),
            "box": torch.tensor([top / side, left / side, self.crop / side], dtype=torch.float32),
            "flip": torch.from_numpy(flip.astype(np.float32)),
            "teacher_image": torch.from_numpy(np.ascontiguousarray(teacher.image.transpose(2, 0, 1))),
            "teacher_masks": torch.from_numpy(masks),
            "teacher_fov": torch.from_numpy(np.ascontiguousarray(teacher.fov[None])).bool(),
            "grade": torch.tensor(record.grade, dtype=torch.int64),
            "dme": torch.tensor(record.dme_target, dtype=torch.int64),
            "presence": torch.tensor(self.presence[index], dtype=torch.int64),
            "index": index,
        }
        if stats is not None:
            item["teacher_stats"] = torch.from_numpy(stats)
        return item


def alpha_in_crops(attention: torch.Tensor, box: torch.Tensor, flip: torch.Tensor, crop: int) -> torch.Tensor:
    """α ``(B, L, h, w)`` of whole images, sampled bilinearly at the pixels of each image's crop: ``(B, L, c, c)``.

    Equal to up-sampling α to the image's size (``F.interpolate``, bilinear, ``align_corners=False``: the paper's
    up-sampling, ``training/pseudo.py``) and cutting out the crop, then flipping it, without making the
    full-size map. Outside the image α is continued from its border (those pixels are outside the FOV).

    Args:
        attention: α on f_low's grid, which spans the whole image.
        box: ``(B, 4)``: top, left and side of each crop over the image side (:class:`CropDataset`).
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
