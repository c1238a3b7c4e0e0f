"""Stage 2's views: the one sampler of G's X^I inputs and of both of D's branches.

D must judge masks, not samplers: if its real images (X^P) and its fake ones (X^I) were cut by different rules
(lesion-centred and rotated vs uniform and flipped), it could tell the branches apart by the cut alone and pay G
for nothing G's masks can change. So :func:`view_dataset` is the one sampler: the X^I images G trains on are drawn
with it, and so is a separate draw of X^P for D's real branch, with the same centring rule, the same geometric
augmentation and the same interpolation (``tests/training/test_disc_sampler.py``). G's supervised BCE on X^P keeps
its own recipe (``training/stages.py``: lesion-centred crops with ``seg_pretrain.augment`` at two sizes).

- One size (G on the grader's images): the view is the stage's X^I item, ``joint.augment`` on the whole image
  (flips and rotation; no lesion centring: a view carries no masks to centre on).
- Two sizes (``data.seg_size`` > ``data.preprocess.size``, ``TrainConfig.two_size_joint``): at the grader's size
  (384 px in ``configs/cpu``) a microaneurysm is under one pixel and G's own 1152 px has 9x the pixels, too many to
  run G on whole grading images at every step on a CPU. So G trains on crops at its own size
  (:class:`CropDataset`: ``seg_pretrain.augment.crop`` square, centred on a uniformly drawn field-of-view pixel,
  flipped, no rotation), while the grader trains on X^I at its size with the pooled masks and statistics of the G
  the stage started with, precomputed once (the one mask path, ``training/mask_inputs.py``). The pseudo masks of
  X^I crops come from a teacher pass on the whole image (``training/pseudo.py``). No gradient links the grader
  and G within the stage, so ``joint.grade_to_generator`` must be false.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from drcollab.data.crops import window
from drcollab.data.presence import PresenceConfig, lesion_presence
from drcollab.data.records import Record
from drcollab.data.transforms import BACKGROUND
from drcollab.training.config import TrainConfig
from drcollab.training.data import TrainData
from drcollab.training.datasets import FundusDataset, GraderInputLoader, Loader


class CropDataset(Dataset):
    """Crops at G's size, each a window of side ``crop`` centred on a uniformly drawn field-of-view pixel, padded
    with the background where it leaves the image, then flipped.

    Items are looked up by ``(index, seed)`` pairs (:class:`~drcollab.training.sampling.EpochSampler`) and hold:
    ``image`` ``(3, c, c)`` uint8 and ``fov`` ``(1, c, c)`` bool, the crop; ``box`` ``(4,)`` float32 = top, left,
    side of the crop in G-size pixels of the unflipped image, over the image side, and ``flip`` ``(2,)`` float32 =
    (vertical, horizontal) flips as 1.0. With ``teacher`` (X^I: the grader's loader and the start G's inputs) also
    what the teacher pass needs of the whole image: ``teacher_image`` ``(3, s, s)`` uint8 (the grader's size,
    un-augmented), ``teacher_fov`` ``(1, s, s)`` bool, ``teacher_masks`` ``(L, s, s)`` uint8 and, when the mask path
    gives them, ``teacher_stats`` ``(S,)``; and ``grade``, ``dme``, ``presence`` as
    :class:`~drcollab.training.datasets.FundusDataset` gives them. Without it (D's real view of X^P) the crop alone.
    """

    def __init__(
        self, records: Sequence[Record], load_seg: Loader, crop: int,
        teacher: tuple[Loader, GraderInputLoader] | None = None, presence: PresenceConfig | None = None,
        flips: bool = True,
    ) -> None:
        missing = [r.name for r in records if teacher is not None and r.grade is None]
        if missing:
            raise ValueError(f"{len(missing)} images lack a grade (first: {missing[0]}); check the data sources")
        self.records = list(records)
        self.load_seg, self.teacher = load_seg, teacher
        self.crop, self.flips = crop, flips
        self.presence = [lesion_presence(r, presence) for r in self.records] if teacher is not None else None

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
        item: dict[str, Any] = {
            "image": torch.from_numpy(np.ascontiguousarray(image)),
            "fov": torch.from_numpy(np.ascontiguousarray(fov)).bool(),
            "box": torch.tensor([top / side, left / side, self.crop / side], dtype=torch.float32),
            "flip": torch.from_numpy(flip.astype(np.float32)),
            "index": index,
        }
        if self.teacher is None:
            return item
        load_grader, g_inputs = self.teacher
        whole = load_grader(record)
        masks, stats = g_inputs(record)
        item |= {
            "teacher_image": torch.from_numpy(np.ascontiguousarray(whole.image.transpose(2, 0, 1))),
            "teacher_masks": torch.from_numpy(masks),
            "teacher_fov": torch.from_numpy(np.ascontiguousarray(whole.fov[None])).bool(),
            "grade": torch.tensor(record.grade, dtype=torch.int64),
            "dme": torch.tensor(record.dme_target, dtype=torch.int64),
            "presence": torch.tensor(self.presence[index], dtype=torch.int64),
        }
        if stats is not None:
            item["teacher_stats"] = torch.from_numpy(stats)
        return item


def view_dataset(
    cfg: TrainConfig, data: TrainData, records: Sequence[Record], g_inputs: GraderInputLoader | None = None,
    grades: bool = True,
) -> Dataset:
    """The one sampler of stage 2's views of ``records``: G's X^I inputs (``grades``) and D's real view of X^P.

    Args:
        cfg: The run's config: one size or two (``two_size_joint``) and the augmentation.
        data: The caches: the grader's size (``cache``) and G's (``seg_cache``).
        records: The images to view.
        g_inputs: The G inputs the grader reads with X^I (a frozen or start G's, ``training/mask_inputs.py``).
        grades: X^I views, with their labels (and, for crops, the teacher pass's inputs); false: the view alone.
    """
    presence = cfg.data.presence if grades else None
    if cfg.two_size_joint:
        teacher = (data.cache.get, g_inputs) if grades else None
        return CropDataset(records, data.seg_cache.get, cfg.seg_pretrain.augment.crop, teacher, presence)
    return FundusDataset(records, data.cache.get, cfg.joint.augment, labels="grade" if grades else "image",
                         presence=presence, g_inputs=g_inputs if grades else None)
