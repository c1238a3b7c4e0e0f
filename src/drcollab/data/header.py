"""The hard floor on what can be a fundus photograph, checked from the image header before any pixel is decoded.

A 1x1 PNG, an 8000x20 strip or a file that declares 7000x7000 pixels but holds one row would otherwise be
decoded, searched for a field of view (a 65000x2 strip costs a minute there) and graded with confidence.
:func:`header_problem` refuses them from what the header declares and the file's size alone. Whether an
acceptable-looking image is *gradable* is a separate, later question (:mod:`drcollab.inference.gradability`);
``predict`` and ``serve`` list an image refused for its size or shape (:func:`shape_problem`) as ungradable.
"""

from __future__ import annotations

from PIL import Image
from pydantic import Field

from drcollab.config import StrictModel

# deflate (PNG's compression) never shrinks data by more than 1032:1, so a PNG smaller than its declared
# pixel bytes / 1032 cannot hold them all (its pixel data is cut short).
DEFLATE_MAX_RATIO = 1032


class ImageLimits(StrictModel):
    """Sizes below which an image is refused (``drcollab predict`` / ``serve`` ``--min-side``, ``--max-aspect``)."""

    min_side: int = Field(64, ge=1, description="Shorter side in pixels; fundus photographs are hundreds or more.")
    max_aspect: float = Field(
        4.0, ge=1, description="Longer side / shorter side; fundus cameras give 1 to about 2."
    )


def shape_problem(width: int, height: int, limits: ImageLimits) -> str | None:
    """Why a ``width x height`` image is too small or too elongated to be a fundus photograph, or None.

    ``drcollab predict`` and ``serve`` report such an image as ungradable with this reason (see
    :mod:`drcollab.inference.gradability`), without decoding it.
    """
    short, long = min(width, height), max(width, height)
    if short < limits.min_side:
        return (f"image is {width}x{height} px, smaller than the {limits.min_side} px minimum side (--min-side): "
                "not a fundus photograph")
    if long / short > limits.max_aspect:
        return (f"image is {width}x{height} px, an aspect ratio of {long / short:.0f}:1 over the "
                f"{limits.max_aspect:g}:1 limit (--max-aspect): not a fundus photograph")
    return None


def header_problem(img: Image.Image, file_bytes: int, limits: ImageLimits) -> str | None:
    """Why an opened (header-only) image cannot be a fundus photograph (:func:`shape_problem`, or pixel data
    cut short), or None.

    Args:
        img: From ``Image.open`` (nothing decoded yet).
        file_bytes: Size of the encoded file.
        limits: The size and aspect floor.
    """
    w, h = img.size
    shape = shape_problem(w, h, limits)
    if shape is not None:
        return shape
    if img.format == "PNG":
        bits = 1 if img.mode in ("1", "P") else 8 * len(img.getbands())  # a lower bound: P may be 1-bit
        raw = h * (1 + w * bits // 8)  # a filter byte + the pixels of each row
        if file_bytes * DEFLATE_MAX_RATIO < raw:
            return (f"PNG declares {w}x{h} px but its {file_bytes} bytes cannot hold them: "
                    "the pixel data is cut short; copy the file again")
    return None
