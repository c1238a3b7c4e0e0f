"""Torch datasets over preprocessed records: pixel-labelled (X^P) and grade-labelled (X^I) images."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from torch.utils.data import Dataset

from drcollab.data.preprocess import Preprocessed
from drcollab.data.records import Record
from drcollab.data.transforms import AugmentConfig, augment, build_augment, image_to_tensor

Loader = Callable[[Record], Preprocessed]


class FundusDataset(Dataset):
    """Preprocessed images with their masks and/or grades, augmented jointly.

    Items are looked up by the ``(index, augmentation_seed)`` pairs that
    :class:`~drcollab.training.sampling.EpochSampler` yields (a plain ``int`` means no augmentation).

    Returns dicts with ``image`` ``(3, H, W)`` float32, ``index``, and the ``labels`` asked for:
    ``masks`` ``(L, H, W)`` float32 or ``grade`` (int64 scalar).
    """

    def __init__(
        self,
        records: Sequence[Record],
        load: Loader,
        augment_cfg: AugmentConfig | None = None,
        labels: Literal["masks", "grade"] = "masks",
    ) -> None:
        missing = [r.name for r in records if (not r.has_masks if labels == "masks" else r.grade is None)]
        if missing:
            raise ValueError(f"{len(missing)} images lack {labels} (first: {missing[0]}); check the data sources")
        self.records = list(records)
        self.load = load
        self.labels = labels
        self.transform = build_augment(augment_cfg) if augment_cfg is not None else None

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, seed = key if isinstance(key, tuple) else (key, None)
        record = self.records[index]
        pre = self.load(record)
        pre_masks = pre.masks if self.labels == "masks" else None
        if self.transform is not None and seed is not None:
            image, masks = augment(self.transform, pre.image, pre_masks, seed)
        else:
            image = torch.from_numpy(pre.image).permute(2, 0, 1)  # (3, H, W) uint8
            masks = None if pre_masks is None else torch.from_numpy(pre_masks)
        item: dict[str, Any] = {"image": image_to_tensor(image), "index": index}
        if masks is not None:
            item["masks"] = masks.float()
        if self.labels == "grade":
            item["grade"] = torch.tensor(record.grade, dtype=torch.int64)
        return item
