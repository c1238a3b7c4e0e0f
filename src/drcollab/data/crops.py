"""Training crops that see lesions: a share centred on a lesion pixel, the rest inside the field of view.

At a resolution where microaneurysms are a few pixels wide, lesions cover 0.1-1 % of the field of view, so
uniform random crops are almost all background and G spends its budget learning that. A configurable share of
crops (``augment.lesion_crops``) is centred instead on a pixel of one lesion type, the type drawn with
``augment.lesion_crop_weights`` among those the image has (equal weights draw rare types far more often than
their pixel share); the other crops are centred on a uniform pixel of the field of view
(``augment.crop_centre: fov``) or lie anywhere (``anywhere``, as ``v2.RandomCrop``).

Every choice comes from one seed per sample (``EpochSampler``'s), so crops are reproducible and resumable.
Rotation happens after the crop, on a window ``ceil(crop * sqrt 2)`` wide around the centre, so the crop is
never cut from a rotated corner and rotating costs the window, not the whole image.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from drcollab.data.transforms import AugmentConfig


def choose_centre(
    rng: np.random.Generator, shape: tuple[int, int], masks: np.ndarray | None, fov: np.ndarray | None,
    cfg: AugmentConfig,
) -> tuple[int, int, int | None]:
    """The crop centre ``(y, x)`` and the lesion index it was chosen for (``None`` for a background crop).

    Args:
        rng: The sample's generator.
        shape: ``(H, W)`` of the image.
        masks: ``(L, H, W)`` bool lesion masks, or ``None`` (no lesion-centred crops then).
        fov: ``(H, W)`` bool field of view, or ``None`` (anywhere).
        cfg: The stage's augmentation settings.
    """
    h, w = shape
    if masks is not None and cfg.lesion_crops > 0 and rng.random() < cfg.lesion_crops:
        weights = np.array([cfg.lesion_crop_weights[k] if masks[k].any() else 0.0 for k in range(len(masks))])
        if weights.sum() > 0:
            lesion = int(rng.choice(len(masks), p=weights / weights.sum()))
            pixels = np.flatnonzero(masks[lesion])
            y, x = divmod(int(pixels[rng.integers(len(pixels))]), w)
            return y, x, lesion
    if cfg.crop_centre == "fov" and fov is not None and fov.any():
        pixels = np.flatnonzero(fov)
        y, x = divmod(int(pixels[rng.integers(len(pixels))]), w)
        return y, x, None
    return int(rng.integers(h)), int(rng.integers(w)), None


def window(array: np.ndarray, centre: tuple[int, int], side: int, fill: int) -> np.ndarray:
    """The ``(K, side, side)`` window of a ``(K, H, W)`` stack whose pixel ``(side // 2, side // 2)`` is ``centre``,
    padded with ``fill`` where it leaves the array."""
    k, h, w = array.shape
    y0, x0 = centre[0] - side // 2, centre[1] - side // 2
    out = np.full((k, side, side), fill, dtype=array.dtype)  # (K, side, side)
    sy0, sx0, sy1, sx1 = max(y0, 0), max(x0, 0), min(y0 + side, h), min(x0 + side, w)
    if sy1 > sy0 and sx1 > sx0:
        out[:, sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = array[:, sy0:sy1, sx0:sx1]
    return out


def window_side(cfg: AugmentConfig) -> int:
    """Side of the window cut before rotation: the crop's diagonal (so no rotated corner enters the crop), divided
    by the smallest zoom of ``augment.scale`` (a zoomed-out window must still cover the crop)."""
    assert cfg.crop is not None
    zoom = 1.0 if cfg.scale is None else min(1.0, cfg.scale[0])
    if cfg.rotation <= 0 and zoom == 1.0:
        return cfg.crop
    diagonal = math.sqrt(2) if cfg.rotation > 0 else 1.0
    side = math.ceil(cfg.crop * diagonal / zoom) + 2
    return side + (side - cfg.crop) % 2  # same parity as the crop, so the centre crop is symmetric


def centre_crop(t: torch.Tensor, crop: int) -> torch.Tensor:
    """The central ``crop x crop`` of ``(..., S, S)``."""
    s = t.shape[-1]
    o = (s - crop) // 2
    return t[..., o : o + crop, o : o + crop]
