"""Decoding images and lesion masks, with errors that name the file.

Masks may be stored as 1-bit or palette images (IDRiD's own files), grey-scale, or RGB/RGBA
copies with the lesion in the red channel and alpha 255 everywhere. The lesion is always read
from the first channel (after palette expansion), never as a max over channels: a max over RGBA
would mark every pixel as lesion because of the alpha channel.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from drcollab.constants import LESIONS
from drcollab.data.header import ImageLimits, header_problem
from drcollab.data.records import Record, Sample
from drcollab.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")


def _open(path: Path, limits: ImageLimits | None = None) -> Image.Image:
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        img = Image.open(path)  # the header only
        problem = None if limits is None else header_problem(img, path.stat().st_size, limits)
        if problem is not None:
            raise DataError(path, f"refused: {problem}")
        img.load()  # force the decode now: truncated or corrupt data raises here, not later
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(path, f"cannot decode image ({err})") from err
    except Image.DecompressionBombError as err:
        raise DataError(path, f"refused: image too large ({err})") from err
    return img


def read_image(path: str | Path, limits: ImageLimits | None = None) -> np.ndarray:
    """Read a colour image as ``(H, W, 3)`` uint8 RGB. Grey images are repeated over 3 channels.

    Args:
        limits: When given, an image whose header falls below them is refused before its pixels are decoded.
    """
    path = Path(path)
    img = _open(path, limits)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8)


def read_mask(path: str | Path) -> np.ndarray:
    """Read a binary lesion mask as ``(H, W)`` bool: first channel > 0."""
    path = Path(path)
    img = _open(path)
    if img.mode == "P":
        img = img.convert("RGB")
    arr = np.asarray(img)
    if arr.ndim == 3:
        arr = arr[..., 0]  # (H, W, C) -> (H, W): the lesion channel, never a max over channels
    return arr > 0


def load_masks(record: Record, size_hw: tuple[int, int]) -> np.ndarray | None:
    """Stack a record's lesion masks as ``(L, H, W)`` bool; an absent file is an all-zero lesion."""
    if record.mask_paths is None:
        return None
    if len(record.mask_paths) != len(LESIONS):
        raise DataError(record.image_path, f"expected {len(LESIONS)} mask entries, got {len(record.mask_paths)}")
    masks = np.zeros((len(LESIONS), *size_hw), dtype=bool)  # (L, H, W)
    for i, mask_path in enumerate(record.mask_paths):
        if mask_path is None:
            continue
        mask = read_mask(mask_path)
        if mask.shape != size_hw:
            raise DataError(
                mask_path,
                f"mask size {mask.shape[1]}x{mask.shape[0]} differs from its image "
                f"{record.image_path.name} ({size_hw[1]}x{size_hw[0]})",
            )
        masks[i] = mask
    return masks


def load_sample(record: Record) -> Sample:
    """Decode one record's image and masks."""
    image = read_image(record.image_path)
    masks = load_masks(record, image.shape[:2])
    return Sample(name=record.name, image=image, masks=masks, grade=record.grade, path=record.image_path)
