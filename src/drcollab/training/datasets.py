"""Torch datasets over preprocessed records: pixel-labelled (X^P) and grade-labelled (X^I) images."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from drcollab.data.crops import centre_crop, choose_centre, window, window_side
from drcollab.data.preprocess import Preprocessed
from drcollab.data.presence import PresenceConfig, lesion_presence
from drcollab.data.records import Record
from drcollab.data.transforms import BACKGROUND, AugmentConfig, augment, build_augment

Loader = Callable[[Record], Preprocessed]
GraderInputLoader = Callable[[Record], tuple[np.ndarray, np.ndarray | None]]  # uint8 (L, H, W), float32 (S,) | None


class FundusDataset(Dataset):
    """Preprocessed images with their masks and/or grades, augmented jointly.

    Items are looked up by the ``(index, augmentation_seed)`` pairs that
    :class:`~drcollab.training.sampling.EpochSampler` yields (a plain ``int`` means no augmentation).

    Returns dicts with ``image`` ``(3, H, W)`` uint8, ``fov`` ``(1, H, W)`` bool (the field of view, moved
    with the image: pixels outside it do not count in G's losses), ``index``, and the ``labels`` asked for:
    ``masks`` ``(L, H, W)`` bool or ``grade`` and ``dme`` (int64 scalars; ``dme`` is the record's ``dme_target``: the
    risk, a partial label's code, or -1 where the dataset gives no DME label, which the DME loss leaves out) with
    ``presence`` ``(L,)`` int64 (per lesion: 0 absent, 1 present, -1 unknown, as ``presence`` implies from the
    record's labels, :mod:`drcollab.data.presence`); ``labels="image"`` gives the image and its FOV alone (D's real
    view of X^P in stage 2, ``training/views.py``).
    With ``g_inputs`` (a frozen G's precomputed inputs, ``training/mask_inputs.py``) grade items also carry
    ``g_masks`` ``(L, H, W)`` uint8 (G's pooled masks, moved by the same flips, rotation, zoom and crop as the image)
    and, when the loader gives them, ``stats`` ``(S,)`` float32 (unchanged: they do not change under flips and
    quarter turns, ``models/lesion_stats.py``; a free rotation, zoom or crop moves the masks but not them).
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
        labels: Literal["masks", "grade", "image"] = "masks",
        presence: PresenceConfig | None = None,
        g_inputs: GraderInputLoader | None = None,
    ) -> None:
        missing = [r.name for r in records
                   if (labels == "masks" and not r.has_masks) or (labels == "grade" and r.grade is None)]
        if missing:
            raise ValueError(f"{len(missing)} images lack {labels} (first: {missing[0]}); check the data sources")
        self.records = list(records)
        self.load = load
        self.labels = labels
        self.g_inputs = g_inputs if labels == "grade" else None
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
        g_masks, stats = self.g_inputs(record) if self.g_inputs is not None else (None, None)
        if g_masks is not None and g_masks.shape[1:] != pre.fov.shape:
            raise ValueError(f"{record.name}: G's pooled masks are {g_masks.shape[1:]}, the image {pre.fov.shape}: "
                             "data.seg_size must be a whole multiple of data.preprocess.size")
        layers = lesions if lesions is not None else g_masks  # (K, H, W) that move with the image
        stack = pre.fov[None] if layers is None else np.concatenate([layers, pre.fov[None]])  # (K + 1, H, W), FOV last
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
        if g_masks is not None:
            item["g_masks"] = stack[:-1].to(torch.uint8)  # (L, H, W) levels of 1/255
        if stats is not None:
            item["stats"] = torch.from_numpy(stats)  # (S,)
        if self.labels == "grade":
            item["grade"] = torch.tensor(record.grade, dtype=torch.int64)
            item["dme"] = torch.tensor(record.dme_target, dtype=torch.int64)
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
