"""Tensors for the networks, and joint image/mask augmentation (torchvision transforms.v2)."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field, model_validator
from torchvision import tv_tensors
from torchvision.transforms import v2

from drcollab.config import StrictModel

BACKGROUND = 128  # value of pixels outside the field of view after preprocessing


class AugmentConfig(StrictModel):
    """Random geometry applied identically to an image and its masks (the paper: flips and rotations), and
    optional photometric changes to the image alone (colour jitter; not in the paper)."""

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

    scale: tuple[float, float] | None = Field(
        None, description="Random zoom range (min, max), e.g. [0.9, 1.1], applied with the rotation about the image "
        "centre; null = none (the paper). Models camera distance and FOV size differences."
    )
    brightness: float = Field(0.0, ge=0, le=1, description="Colour jitter: brightness factor in [1-b, 1+b] (0 = off).")
    contrast: float = Field(0.0, ge=0, le=1, description="Colour jitter: contrast factor in [1-c, 1+c] (0 = off).")
    saturation: float = Field(0.0, ge=0, le=1, description="Colour jitter: saturation factor in [1-s, 1+s] (0 = off).")
    hue: float = Field(0.0, ge=0, le=0.5, description="Colour jitter: hue shift in [-h, h] (0 = off).")

    @model_validator(mode="after")
    def _scale_range(self) -> AugmentConfig:
        if self.scale is not None and not 0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f"scale {list(self.scale)} must be [min, max] with 0 < min <= max, e.g. [0.9, 1.1]")
        return self

    @property
    def photometric(self) -> bool:
        """Whether any colour jitter is on (it changes the image, never the masks or the field of view)."""
        return any(v > 0 for v in (self.brightness, self.contrast, self.saturation, self.hue))

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
    fill = {tv_tensors.Image: BACKGROUND, tv_tensors.Mask: 0}
    if cfg.scale is not None:
        ops.append(v2.RandomAffine(degrees=cfg.rotation, scale=cfg.scale, fill=fill))
    elif cfg.rotation > 0:
        ops.append(v2.RandomRotation(cfg.rotation, fill=fill))
    if cfg.crop is not None and not cfg.centred_crops:
        ops.append(v2.RandomCrop(cfg.crop))
    if cfg.photometric:  # colour transforms leave tv_tensors.Mask (lesions, FOV) untouched
        ops.append(v2.ColorJitter(cfg.brightness or None, cfg.contrast or None, cfg.saturation or None,
                                  cfg.hue or None))
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
