"""Tensors for the networks, and joint image/mask augmentation (torchvision transforms.v2)."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field
from torchvision import tv_tensors
from torchvision.transforms import v2

from drcollab.config import StrictModel

BACKGROUND = 128  # value of pixels outside the field of view after preprocessing


class AugmentConfig(StrictModel):
    """Random geometry applied identically to an image and its masks (the paper: flips and rotations)."""

    hflip: bool = True
    vflip: bool = True
    rotation: float = Field(180.0, ge=0, le=180, description="Maximum rotation in degrees (uniform in +-rotation).")
    crop: int | None = Field(None, ge=16, description="Random square crop side in pixels; None keeps the whole image.")
    lesion_crops: float = Field(
        0.0, ge=0, le=1, description="Share of crops centred on a pixel of one lesion type (see data/crops.py); "
        "0 = the paper's uniform random crops."
    )
    lesion_crop_weights: tuple[float, float, float, float] = Field(
        (1.0, 1.0, 1.0, 1.0), description="Relative frequency with which each lesion type (MA, HE, EX, SE) is "
        "chosen for a lesion-centred crop, among the types the image has. Equal weights draw rare types far more "
        "often than their share of lesion pixels."
    )
    crop_centre: Literal["anywhere", "fov"] = Field(
        "anywhere", description="Where the other crops lie: anywhere in the image (the paper's random crop) or "
        "centred on a uniformly drawn pixel of the field of view."
    )

    @property
    def centred_crops(self) -> bool:
        """Whether crops are cut around a chosen centre (data/crops.py) rather than by ``v2.RandomCrop``."""
        return self.crop is not None and (self.lesion_crops > 0 or self.crop_centre == "fov")


def image_to_tensor(image: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``(H, W, 3)`` uint8 array or ``(..., 3, H, W)`` uint8 tensor -> ``(..., 3, H, W)`` float32 in about [-1, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1) if isinstance(image, np.ndarray) else image
    return t.float().div_(127.5).sub_(1.0)


def build_augment(cfg: AugmentConfig) -> v2.Compose:
    ops: list[v2.Transform] = []
    if cfg.hflip:
        ops.append(v2.RandomHorizontalFlip())
    if cfg.vflip:
        ops.append(v2.RandomVerticalFlip())
    if cfg.rotation > 0:
        ops.append(v2.RandomRotation(cfg.rotation, fill={tv_tensors.Image: BACKGROUND, tv_tensors.Mask: 0}))
    if cfg.crop is not None and not cfg.centred_crops:
        ops.append(v2.RandomCrop(cfg.crop))
    return v2.Compose(ops or [v2.Identity()])  # Compose refuses an empty list


def augment(
    transform: v2.Compose, image: np.ndarray, masks: np.ndarray | None, seed: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Apply ``transform`` jointly with its own RNG stream; returns uint8 ``(3, H, W)`` and ``(K, H, W)``.

    ``masks`` is any ``(K, H, W)`` stack that moves with the image (lesion masks, the field of view).

    The global torch RNG is forked, so the result depends only on ``seed`` (not on worker, process
    or how many samples were drawn before) and the caller's RNG stream is left untouched.
    """
    img = tv_tensors.Image(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1))  # (3, H, W)
    msk = None if masks is None else tv_tensors.Mask(torch.from_numpy(masks.astype(np.uint8)))  # (L, H, W)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if msk is None:
            return transform(img).as_subclass(torch.Tensor), None
        img, msk = transform(img, msk)
    return img.as_subclass(torch.Tensor), msk.as_subclass(torch.Tensor)
