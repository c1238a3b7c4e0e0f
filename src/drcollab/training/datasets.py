"""Torch datasets over preprocessed records: pixel-labelled (X^P) and grade-labelled (X^I) images."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from drcollab.constants import MISSING_DME
from drcollab.data.crops import centre_crop, choose_centre, window, window_side
from drcollab.data.preprocess import Preprocessed
from drcollab.data.presence import PresenceConfig, lesion_presence
from drcollab.data.records import Record
from drcollab.data.transforms import BACKGROUND, AugmentConfig, augment, build_augment

Loader = Callable[[Record], Preprocessed]


class FundusDataset(Dataset):
    """Preprocessed images with their masks and/or grades, augmented jointly.

    Items are looked up by the ``(index, augmentation_seed)`` pairs that
    :class:`~drcollab.training.sampling.EpochSampler` yields (a plain ``int`` means no augmentation).

    Returns dicts with ``image`` ``(3, H, W)`` uint8, ``fov`` ``(1, H, W)`` bool (the field of view, moved
    with the image: pixels outside it do not count in G's losses), ``index``, and the ``labels`` asked for:
    ``masks`` ``(L, H, W)`` bool or ``grade`` and ``dme`` (int64 scalars; ``dme`` is -1 where the dataset gives no
    DME label, and the DME loss leaves such images out) with ``presence`` ``(L,)`` int64 (per lesion: 0 absent,
    1 present, -1 unknown, as ``presence`` implies from the record's labels, :mod:`drcollab.data.presence`).
    Images and masks stay 8-bit until they reach the device (a quarter of float32's bytes through the loader
    queues and pinned memory); the steps normalise them there (``training/steps.py`` ``network_inputs``). Crops
    centred on lesions or inside the FOV (``augment.lesion_crops`` / ``augment.crop_centre``) are cut by
    :mod:`drcollab.data.crops`.
    """

    def __init__(
        self,
        records: Sequence[Record],
        load: Loader,
        augment_cfg: AugmentConfig | None = None,
        labels: Literal["masks", "grade"] = "masks",
        presence: PresenceConfig | None = None,
    ) -> None:
        missing = [r.name for r in records if (not r.has_masks if labels == "masks" else r.grade is None)]
        if missing:
            raise ValueError(f"{len(missing)} images lack {labels} (first: {missing[0]}); check the data sources")
        self.records = list(records)
        self.load = load
        self.labels = labels
        self.augment_cfg = augment_cfg
        self.transform = build_augment(augment_cfg) if augment_cfg is not None else None
        self.presence = [lesion_presence(r, presence) for r in self.records] if labels == "grade" else None

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, seed = key if isinstance(key, tuple) else (key, None)
        record = self.records[index]
        pre = self.load(record)
        lesions = pre.masks if self.labels == "masks" else None
        stack = pre.fov[None] if lesions is None else np.concatenate([lesions, pre.fov[None]])  # (K, H, W), FOV last
        image = pre.image.transpose(2, 0, 1)  # (3, H, W) uint8
        if self.transform is not None and seed is not None:
            image, stack = self._augment(image, stack, lesions, pre.fov, seed)
            if self.augment_cfg.photometric:  # jitter must not turn the background into signal
                image = torch.where(stack[-1:].bool(), image, torch.tensor(BACKGROUND, dtype=image.dtype))
        else:
            image, stack = torch.from_numpy(np.ascontiguousarray(image)), torch.from_numpy(stack)
        item: dict[str, Any] = {"image": image, "fov": stack[-1:].bool(), "index": index}
        if lesions is not None:
            item["masks"] = stack[:-1].bool()
        if self.labels == "grade":
            item["grade"] = torch.tensor(record.grade, dtype=torch.int64)
            item["dme"] = torch.tensor(MISSING_DME if record.dme is None else record.dme, dtype=torch.int64)
            item["presence"] = torch.tensor(self.presence[index], dtype=torch.int64)  # (L,)
        return item

    def _augment(
        self, image: np.ndarray, stack: np.ndarray, lesions: np.ndarray | None, fov: np.ndarray, seed: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Flips, rotation and crop, jointly; centred crops cut a window around their centre first."""
        cfg = self.augment_cfg
        if not cfg.centred_crops:
            return augment(self.transform, image.transpose(1, 2, 0), stack, seed)
        y, x, _ = choose_centre(np.random.default_rng(seed), fov.shape, lesions, fov, cfg)
        side = window_side(cfg)
        image = window(image, (y, x), side, BACKGROUND)  # (3, side, side)
        stack = window(stack, (y, x), side, 0)  # (K, side, side)
        image, stack = augment(self.transform, image.transpose(1, 2, 0), stack, seed)
        return centre_crop(image, cfg.crop), centre_crop(stack, cfg.crop)
