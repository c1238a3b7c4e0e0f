"""Field-of-view crop, resize and contrast normalisation of fundus photographs.

Steps (see ``docs/preprocessing.md``):

1. Find the field of view (FOV), the bright retinal disc on a dark background (``data/fov.py``):
   red channel above ``cfg.fov_threshold`` times its 99th percentile, a circle fitted to the
   outline of the largest such region.
2. Crop the circle's bounding square (black where it leaves the image) and resize it to
   ``cfg.size`` with area interpolation. Masks follow the same geometry; a resized mask pixel is
   set when more than ``cfg.mask_threshold`` of its area was set (0: any coverage), so a
   one-pixel microaneurysm never disappears.
3. Contrast normalisation after Graham / van Grinsven: ``4*I - 4*G_sigma(I) + 128``, sigma a
   fraction of the FOV radius; the blur is normalised by the blurred FOV mask so the dark
   background does not leak a bright ring into the FOV edge. Pixels outside the FOV get
   ``cfg.background``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from drcollab.config import PreprocessConfig
from drcollab.data.fov import FieldOfView, detect_fov, fov_mask, shrink_rim


@dataclass(frozen=True)
class Geometry:
    """Where a preprocessed image came from, to map outputs back to the original pixels.

    Attributes:
        box: ``(x0, y0, x1, y1)`` crop square in original pixels (end exclusive); it may extend past
            the image, where the crop is padded.
        original_hw: ``(H, W)`` of the original image.
        size: Side ``S`` of the square output.
        centre: FOV circle centre ``(x, y)`` in original pixels.
        radius: FOV circle radius in original pixels.
    """

    box: tuple[int, int, int, int]
    original_hw: tuple[int, int]
    size: int
    centre: tuple[float, float]
    radius: float

    def __post_init__(self) -> None:
        x0, y0, x1, y1 = self.box
        if x1 - x0 != y1 - y0 or x1 <= x0:
            raise ValueError(f"geometry box {self.box} must be a non-empty square")
        if self.size < 1 or min(self.original_hw) < 1:
            raise ValueError(f"geometry sizes must be positive, got size={self.size} original_hw={self.original_hw}")

    @classmethod
    def from_fov(cls, fov: FieldOfView, original_hw: tuple[int, int], size: int) -> Geometry:
        """The bounding square of the FOV circle."""
        side = max(1, round(2 * fov.radius))
        x0 = round(fov.centre[0] + 0.5 - side / 2)  # +0.5: pixel centres -> pixel edges
        y0 = round(fov.centre[1] + 0.5 - side / 2)
        return cls((x0, y0, x0 + side, y0 + side), tuple(original_hw), size, fov.centre, fov.radius)

    @property
    def scale(self) -> float:
        """Output pixels per original pixel."""
        return self.size / (self.box[2] - self.box[0])

    @property
    def radius_out(self) -> float:
        """FOV radius in output pixels."""
        return self.radius * self.scale

    def crop_resize(self, array: np.ndarray, fill: float = 0) -> np.ndarray:
        """Crop ``(H, W)`` or ``(H, W, C)`` to the box (``fill`` outside the image), resize to ``(S, S[, C])``.

        Area interpolation when shrinking (each output pixel is the mean of the area it covers),
        bilinear when enlarging.
        """
        h, w = self.original_hw
        if array.shape[:2] != (h, w):
            raise ValueError(f"array of shape {array.shape} does not match the geometry's original size {h}x{w}")
        x0, y0, x1, y1 = self.box
        crop = array[max(y0, 0) : min(y1, h), max(x0, 0) : min(x1, w)]
        if crop.size == 0:
            raise ValueError(f"crop box {self.box} lies outside the {w}x{h} image")
        pad = (max(-y0, 0), max(y1 - h, 0), max(-x0, 0), max(x1 - w, 0))  # top, bottom, left, right
        square = cv2.copyMakeBorder(crop, *pad, cv2.BORDER_CONSTANT, value=[fill] * 4)
        interp = cv2.INTER_AREA if self.scale <= 1 else cv2.INTER_LINEAR
        return cv2.resize(square, (self.size, self.size), interpolation=interp)

    def resize_masks(self, masks: np.ndarray, threshold: float = 0.0) -> np.ndarray:
        """``(L, H, W)`` bool -> ``(L, S, S)`` bool: set where more than ``threshold`` of the area was set."""
        out = np.zeros((len(masks), self.size, self.size), dtype=bool)  # (L, S, S)
        for i, mask in enumerate(masks):
            if mask.any():  # absent lesions stay all-zero without the float round trip
                out[i] = self.crop_resize(mask.astype(np.float32)) > threshold
        return out

    def to_original(self, maps: np.ndarray, fill: float = 0.0, out_hw: tuple[int, int] | None = None) -> np.ndarray:
        """Map ``(S, S)`` or ``(L, S, S)`` maps back onto the original image (bilinear): ``(H, W)`` / ``(L, H, W)``,
        uint8 for uint8 maps, else float32.

        Original pixels outside the crop box get ``fill``. ``out_hw``: the original image scaled to this size
        instead (e.g. a smaller overlay), each axis by its own factor.
        """
        if maps.shape[-2:] != (self.size, self.size) or maps.ndim not in (2, 3):
            raise ValueError(f"maps must be (S, S) or (L, S, S) with S={self.size}, got {maps.shape}")
        s = self.scale
        x0, y0 = self.box[:2]
        h, w = out_hw or self.original_hw
        fy, fx = h / self.original_hw[0], w / self.original_hw[1]
        # target pixel centre x_t -> original coordinate (x_t + 0.5) / fx -> output coordinate s * (x - x0) - 0.5
        to_out = np.array([[s / fx, 0, s * (0.5 / fx - x0) - 0.5], [0, s / fy, s * (0.5 / fy - y0) - 0.5]],
                          dtype=np.float64)
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        layers = maps[None] if maps.ndim == 2 else maps  # (L, S, S)
        dtype = np.uint8 if maps.dtype == np.uint8 else np.float32
        out = np.stack(
            [cv2.warpAffine(m.astype(dtype), to_out, (w, h), flags=flags, borderValue=fill) for m in layers]
        )  # (L, H, W)
        return out[0] if maps.ndim == 2 else out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (inverse of :meth:`from_dict`)."""
        return {
            "box": list(self.box),
            "original_hw": list(self.original_hw),
            "size": self.size,
            "centre": list(self.centre),
            "radius": self.radius,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Geometry:
        """Rebuild from :meth:`to_dict` output; raises ``ValueError`` naming missing or extra keys."""
        expected = {"box", "original_hw", "size", "centre", "radius"}
        if set(data) != expected:
            raise ValueError(f"geometry keys {sorted(data)} differ from {sorted(expected)}")
        return cls(
            box=tuple(int(v) for v in data["box"]),
            original_hw=tuple(int(v) for v in data["original_hw"]),
            size=int(data["size"]),
            centre=tuple(float(v) for v in data["centre"]),
            radius=float(data["radius"]),
        )


def normalise_contrast(image: np.ndarray, fov: np.ndarray, sigma: float, background: int = 128) -> np.ndarray:
    """Graham / van Grinsven normalisation ``4*I - 4*G_sigma(I) + 128`` inside the FOV, ``background`` outside.

    The local mean ``G_sigma(I)`` averages FOV pixels only (blur of ``I*fov`` over blur of ``fov``),
    so the FOV edge is not brightened by the dark surround. The blur runs on a copy shrunk by
    ``sigma // 4`` (at least 4 px of sigma remain), which changes the result by well under one grey
    level and is ~10x faster at 1024 px.

    Args:
        image: ``(S, S, 3)`` uint8.
        fov: ``(S, S)`` bool.
        sigma: Gaussian sigma in pixels of ``image``.
        background: Grey level written outside the FOV.

    Returns:
        ``(S, S, 3)`` uint8.
    """
    h, w = fov.shape
    m = fov.astype(np.float32)  # (S, S)
    x = image.astype(np.float32) * m[..., None]  # (S, S, 3)
    k = max(1, int(sigma // 4))
    if k > 1:
        small = (max(1, round(w / k)), max(1, round(h / k)))
        xs = cv2.resize(x, small, interpolation=cv2.INTER_AREA)
        ms = cv2.resize(m, small, interpolation=cv2.INTER_AREA)
    else:
        xs, ms = x, m
    num = cv2.GaussianBlur(xs, (0, 0), sigma / k)
    den = cv2.GaussianBlur(ms, (0, 0), sigma / k)
    local = num / np.maximum(den, 1e-6)[..., None]
    if k > 1:
        local = cv2.resize(local, (w, h), interpolation=cv2.INTER_LINEAR)
    out = np.clip(4 * x - 4 * local + 128 + 0.5, 0, 255).astype(np.uint8)
    out[~fov] = background
    return out


@dataclass
class Preprocessed:
    """One preprocessed image with its labels.

    Attributes:
        image: ``(S, S, 3)`` uint8 RGB.
        masks: ``(L, S, S)`` bool lesion masks, or ``None`` when the image has no pixel labels.
        fov: ``(S, S)`` bool field of view.
        geometry: How to map ``(S, S)`` outputs back to the original image.
    """

    image: np.ndarray
    masks: np.ndarray | None
    fov: np.ndarray
    geometry: Geometry

    def __post_init__(self) -> None:
        s = self.geometry.size
        if self.image.shape != (s, s, 3) or self.image.dtype != np.uint8:
            raise ValueError(f"image must be ({s}, {s}, 3) uint8, got {self.image.shape} {self.image.dtype}")
        if self.fov.shape != (s, s) or self.fov.dtype != np.bool_:
            raise ValueError(f"fov must be ({s}, {s}) bool, got {self.fov.shape} {self.fov.dtype}")
        if self.masks is not None and (
            self.masks.ndim != 3 or self.masks.shape[1:] != (s, s) or self.masks.dtype != np.bool_
        ):
            raise ValueError(f"masks must be (L, {s}, {s}) bool, got {self.masks.shape} {self.masks.dtype}")


def _check_inputs(image: np.ndarray, masks: np.ndarray | None) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
    if masks is not None and (masks.ndim != 3 or masks.shape[1:] != image.shape[:2] or masks.dtype != np.bool_):
        h, w = image.shape[:2]
        raise ValueError(f"masks must be (L, {h}, {w}) bool like the image, got {masks.shape} {masks.dtype}")


def preprocess(image: np.ndarray, masks: np.ndarray | None, cfg: PreprocessConfig) -> Preprocessed:
    """Crop a fundus image to its FOV, resize it to ``cfg.size`` and normalise its contrast.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        masks: ``(L, H, W)`` bool lesion masks, or ``None``.
        cfg: Preprocessing settings.

    Raises:
        ValueError: on bad shapes or dtypes, or when no field of view is found.
    """
    _check_inputs(image, masks)
    fov_circle = detect_fov(image, cfg.fov_threshold)
    geometry = Geometry.from_fov(fov_circle, image.shape[:2], cfg.size)
    out = geometry.crop_resize(image)  # (S, S, 3), black where the box leaves the image
    fov = shrink_rim(fov_mask(out[..., 0], fov_circle.level))  # (S, S)
    if cfg.normalise:
        out = normalise_contrast(out, fov, cfg.sigma_fraction * geometry.radius_out, cfg.background)
    out_masks = None if masks is None else geometry.resize_masks(masks, cfg.mask_threshold)
    return Preprocessed(image=out, masks=out_masks, fov=fov, geometry=geometry)
