"""Pictures people look at: lesion overlays and contact sheets (uint8 RGB arrays)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from drcollab.constants import LESION_COLOURS, LESIONS


def overlay_masks(
    image: np.ndarray, masks: np.ndarray, alpha: float = 0.6, show: Sequence[bool] | None = None
) -> np.ndarray:
    """Blend lesion masks onto an image, one colour per lesion (see ``LESION_COLOURS``).

    Args:
        image: ``(H, W, 3)`` uint8.
        masks: ``(L, H, W)`` bool or float in [0, 1] (probabilities are blended by their value).
        alpha: Opacity of a fully-on mask pixel.
        show: Optional per-lesion switch.

    Returns:
        ``(H, W, 3)`` uint8.
    """
    out = image.astype(np.float32)
    for i, lesion in enumerate(LESIONS):
        if show is not None and not show[i]:
            continue
        weight = alpha * masks[i].astype(np.float32)[..., None]  # (H, W, 1)
        out = out * (1 - weight) + np.asarray(LESION_COLOURS[lesion], np.float32) * weight
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def contact_sheet(
    images: Sequence[np.ndarray], captions: Sequence[str], cols: int = 6, tile: int = 192
) -> np.ndarray:
    """Lay images out on a grid of ``tile``-pixel squares with a caption under each."""
    rows = max(1, -(-len(images) // cols))
    caption_h = 18
    sheet = Image.new("RGB", (cols * tile, rows * (tile + caption_h)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for k, (img, text) in enumerate(zip(images, captions, strict=True)):
        r, c = divmod(k, cols)
        thumb = Image.fromarray(img).resize((tile, tile), Image.Resampling.BILINEAR)
        sheet.paste(thumb, (c * tile, r * (tile + caption_h)))
        draw.text((c * tile + 4, r * (tile + caption_h) + tile + 3), text, fill=(0, 0, 0))
    return np.asarray(sheet)


def save_png(array: np.ndarray, path: str | Path, compress_level: int = 6) -> Path:
    """Write a uint8 array as PNG atomically (temporary file, then rename).

    ``compress_level`` 0-9 (zlib): 1 writes a 12-Mpx map about 4x faster than the default 6 for files about a
    fifth larger (``benchmarks/bench_predict_speed.py``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    Image.fromarray(array).save(tmp, format="PNG", compress_level=compress_level)
    tmp.replace(path)
    return path
