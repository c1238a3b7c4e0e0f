"""Field-of-view detection: the bright retinal disc of a fundus photograph on its dark background.

The FOV is searched on a copy whose longer side is at most ``WORK_SIDE`` px: red channel above a
fraction of its 99th percentile, largest component with holes filled, then a robust circle fit on
its outline that ignores outline points lying on the image border (IDRiD cuts the circle at top
and bottom).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

WORK_SIDE = 1024  # the FOV is searched on a copy whose longer side is at most this many pixels
MIN_FOV_FRACTION = 0.05  # a FOV smaller than this fraction of the image is refused


@dataclass(frozen=True)
class FieldOfView:
    """The FOV circle in original pixel coordinates (pixel ``j`` has its centre at ``j``).

    Attributes:
        centre: ``(x, y)``.
        radius: In original pixels.
        level: Red-channel grey level (0-255) above which a pixel belongs to the FOV.
    """

    centre: tuple[float, float]
    radius: float
    level: float


def fov_mask(red: np.ndarray, level: float) -> np.ndarray:
    """Largest connected region of ``red > level`` with its holes filled, ``(H, W)`` bool."""
    binary = (red > level).astype(np.uint8)
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    mask = np.zeros_like(binary)
    if contours:
        largest = max(contours, key=cv2.contourArea)
        cv2.drawContours(mask, [largest], -1, 1, thickness=cv2.FILLED)
    return mask.astype(bool)


def shrink_rim(fov: np.ndarray) -> np.ndarray:
    """Erode a ``(S, S)`` bool FOV by one pixel (image edges count as outside).

    The outermost pixels are only partly retina after resizing; normalisation would amplify
    their darkness 4x into a dark ring.
    """
    eroded = cv2.erode(fov.astype(np.uint8), np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return eroded.astype(bool)


def _fit_circle(points: np.ndarray) -> tuple[float, float, float]:
    """Least-squares (Kasa) circle through ``(N, 2)`` points, refitted without outliers."""
    keep = np.ones(len(points), dtype=bool)
    for _ in range(4):
        p = points[keep]
        mean = p.mean(axis=0)
        q = p - mean  # centred for numerical stability
        a = np.column_stack([q, np.ones(len(q))])  # x^2 + y^2 = 2 cx x + 2 cy y + c
        sol, *_ = np.linalg.lstsq(a, (q**2).sum(axis=1), rcond=None)
        cx, cy = sol[0] / 2, sol[1] / 2
        r = float(np.sqrt(max(sol[2] + cx**2 + cy**2, 0.0)))
        cx, cy = cx + mean[0], cy + mean[1]
        resid = np.hypot(points[:, 0] - cx, points[:, 1] - cy) - r  # (N,)
        mad = np.median(np.abs(resid[keep]))
        new_keep = np.abs(resid) <= max(1.5, 4 * 1.4826 * mad)  # drops notches and lesions cut into the edge
        if new_keep.sum() < 10 or np.array_equal(new_keep, keep):
            break
        keep = new_keep
    return float(cx), float(cy), r


def detect_fov(image: np.ndarray, threshold: float = 0.1) -> FieldOfView:
    """Estimate the FOV circle of a ``(H, W, 3)`` uint8 RGB fundus image.

    Raises:
        ValueError: when no FOV covering at least ``MIN_FOV_FRACTION`` of the image is found.
    """
    h, w = image.shape[:2]
    f = min(1.0, WORK_SIDE / max(h, w))
    sw, sh = max(1, round(w * f)), max(1, round(h * f))
    red = image[..., 0]
    small = red if f == 1.0 else cv2.resize(red, (sw, sh), interpolation=cv2.INTER_AREA)  # (sh, sw)
    hist = np.bincount(small.ravel(), minlength=256)
    p99 = int(np.searchsorted(np.cumsum(hist), 0.99 * small.size))
    level = threshold * p99
    mask = fov_mask(small, level)
    if p99 == 0 or mask.mean() < MIN_FOV_FRACTION:
        raise ValueError(
            f"no field of view found in a {w}x{h} image: the region with red > {level:.1f} "
            f"(= {threshold} x 99th percentile {p99}) covers {mask.mean():.1%} < {MIN_FOV_FRACTION:.0%} of it"
        )
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    pts = max(contours, key=len)[:, 0, :].astype(np.float64)  # (N, 2) x, y
    inner = (pts[:, 0] > 0) & (pts[:, 0] < sw - 1) & (pts[:, 1] > 0) & (pts[:, 1] < sh - 1)
    if inner.sum() >= 20:
        cx, cy, r = _fit_circle(pts[inner])
        r += 0.5  # outline points are centres of the outermost pixels, half a pixel inside the edge
    if inner.sum() < 20 or not (0 <= cx < sw and 0 <= cy < sh and r <= np.hypot(sw, sh)):
        ys, xs = np.nonzero(mask)  # no usable outline: the bounding square of the region
        cx, cy = (xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2
        r = max(xs.max() - xs.min(), ys.max() - ys.min()) / 2 + 0.5
    fx, fy = sw / w, sh / h  # map small-image pixel centres back to original pixel centres
    return FieldOfView(centre=((cx + 0.5) / fx - 0.5, (cy + 0.5) / fy - 0.5), radius=r / f, level=level)
