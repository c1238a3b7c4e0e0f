"""Decoding images and lesion masks, with errors that name the file.

A photograph comes out as ``(H, W, 3)`` uint8 RGB, as every viewer shows it:

- Its EXIF orientation is applied: a camera that stores the pixels sideways with Orientation 6 gives the
  upright photo, so lesion maps and overlays line up with the photo as displayed.
- A 16-bit image is scaled by the 16-bit range (``v / 257``), so a 16-bit and an 8-bit copy of a photograph
  give the same array and its exposure is judged as it was taken (a 12-bit camera image stored in 16 bits comes
  out dark, as it is: stretch it to the 16-bit range first). A floating-point image is taken as ``[0, 1]`` when
  all its values lie in it, else stretched from its minimum to its maximum; one with a NaN or infinite pixel is
  refused. A grey image is repeated over 3 channels.
- Refused with :class:`DataError`, naming the file: a header that declares more pixels than Pillow decodes
  safely (a decompression bomb; the message gives the declared size), a multi-page TIFF (the page count: drcollab
  grades one photograph per file and would silently see only the first page), undecodable or cut-short data.

Masks may be stored as 1-bit or palette images (IDRiD's own files), grey-scale, or RGB/RGBA
copies with the lesion in the red channel and alpha 255 everywhere. The lesion is always read
from the first channel (after palette expansion), never as a max over channels: a max over RGBA
would mark every pixel as lesion because of the alpha channel. A mask belongs to its photo *as displayed*
(EXIF orientation applied, the mask's own orientation too): masks are separate files, usually without EXIF,
drawn on the upright photo. A mask whose size is its photo's turned a quarter (drawn on the stored pixels of a
photo that EXIF turns) is refused with a message that says so; a flip or a half turn (Orientation 2, 3, 4) keeps
the size and cannot be told apart, so such a mask is taken as drawn on the displayed photo.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from drcollab.constants import LESIONS
from drcollab.data.header import ImageLimits, header_problem
from drcollab.data.records import Record, Sample
from drcollab.errors import DataError

FORMATS: dict[str, tuple[str, ...]] = {
    "JPEG": (".jpg", ".jpeg"), "PNG": (".png",), "TIFF": (".tif", ".tiff"), "BMP": (".bmp",)
}  # the photograph formats read (what fundus cameras and archives produce) and their file suffixes
IMAGE_SUFFIXES = tuple(s for suffixes in FORMATS.values() for s in suffixes)
FORMAT_NAMES = f"{', '.join(list(FORMATS)[:-1])} or {list(FORMATS)[-1]}"  # "JPEG, PNG, TIFF or BMP"
QUARTER_TURNS = (5, 6, 7, 8)  # EXIF orientations that swap width and height


def _orientation(img: Image.Image) -> int:
    return img.getexif().get(ExifTags.Base.Orientation, 1)


def displayed_size(img: Image.Image) -> tuple[int, int]:
    """``(width, height)`` of an opened (header-only) image as displayed, its EXIF orientation applied.

    Decodes no pixel: a PNG without EXIF before its pixel data counts as upright here (Pillow would decode it to
    look for EXIF after them; :func:`to_rgb` finds and applies that).
    """
    w, h = img.size
    if img.format == "PNG" and "exif" not in img.info:
        return w, h
    if _orientation(img) not in QUARTER_TURNS:
        return w, h
    if img.format == "TIFF" and (w, h) != (img.tag_v2.get(256), img.tag_v2.get(257)):
        return w, h  # Pillow's TIFF reader turns the image itself: its size is already the displayed one
    return h, w


def header_size(path: Path) -> tuple[int, int] | None:
    """``(width, height)`` as displayed, from the header alone; None when the header cannot be read or declares
    a decompression bomb (:func:`read_image` then says why)."""
    try:
        with Image.open(path) as img:
            return displayed_size(img)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None


def _declared_size(path: Path) -> tuple[int, int] | None:
    """The size a header declares, read past Pillow's decompression-bomb guard (which refuses to open it)."""
    try:
        with path.open("rb") as fp:
            prefix = fp.read(16)
            for fmt in FORMATS:
                factory, accept = Image.OPEN[fmt]  # the format's header parser, as Image.open calls it
                if accept is None or accept(prefix):
                    fp.seek(0)
                    return factory(fp, str(path)).size
    except Exception:  # the size only improves the message: any failure to read it leaves it out
        return None
    return None


def _bomb(path: Path) -> str:
    limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)  # Pillow refuses to open an image over twice its warning size
    size = _declared_size(path)
    declared = "more pixels" if size is None else f"{size[0]}x{size[1]} px ({size[0] * size[1] / 1e6:.0f} Mpx)"
    return (f"refused: its header declares {declared}, over the {limit / 1e6:.0f} Mpx that are decoded safely: "
            "a damaged file or a decompression bomb, not a photograph; remove it or export the photograph again")


def page_problem(img: Image.Image) -> str | None:
    """Why an opened image is not one picture (a multi-page TIFF), or None."""
    pages = getattr(img, "n_frames", 1) if img.format == "TIFF" else 1
    if pages > 1:
        return (f"multi-page TIFF ({pages} pages): drcollab grades one photograph per file and would see only "
                "the first page; save each page as its own file")
    return None


def _open(path: Path, limits: ImageLimits | None = None) -> Image.Image:
    """Open and decode an image file; refuse what cannot be read as one picture (the module docstring)."""
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        img = Image.open(path)  # the header only
    except Image.DecompressionBombError as err:
        raise DataError(path, _bomb(path)) from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(path, f"cannot decode image ({err})") from err
    try:
        problem = page_problem(img)
        if problem is None and limits is not None:
            problem = header_problem(img, path.stat().st_size, limits)
        if problem is not None:
            raise DataError(path, f"refused: {problem}")
        img.load()  # force the decode now: truncated or corrupt data raises here, not later
    except Image.DecompressionBombError as err:  # a TIFF's tiles may declare more than its header
        img.close()
        raise DataError(path, _bomb(path)) from err
    except (OSError, SyntaxError, ValueError) as err:
        img.close()
        raise DataError(path, f"cannot decode image ({err})") from err
    except DataError:
        img.close()
        raise
    return img


def _to_8bit(grey: np.ndarray) -> np.ndarray:
    """``(H, W)`` 16- or 32-bit integer or floating-point pixels -> uint8 (the rules in the module docstring).

    Raises:
        ValueError: a NaN or infinite pixel.
    """
    if grey.dtype.kind == "f":
        if not np.isfinite(grey).all():
            raise ValueError(f"{np.count_nonzero(~np.isfinite(grey))} pixels are NaN or infinite: "
                             "save the image without them")
    elif grey.min() >= 0 and grey.max() <= 65535:  # 16 bits (Pillow may open them as 32-bit integers)
        return ((grey.astype(np.uint32) + 128) // 257).astype(np.uint8)  # 257 * v -> v, 65535 -> 255
    grey = grey.astype(np.float32)
    lo, hi = float(grey.min()), float(grey.max())
    if lo < 0 or hi > 1:  # not a [0, 1] image: stretch its range
        grey = (grey - lo) / (hi - lo) if hi > lo else np.zeros_like(grey)
    return np.round(grey * 255).astype(np.uint8)


def to_rgb(img: Image.Image) -> np.ndarray:
    """A decoded image as ``(H, W, 3)`` uint8 RGB as displayed (EXIF orientation, bit depth: the module docstring).

    Raises:
        ValueError: a floating-point image with a NaN or infinite pixel.
    """
    ImageOps.exif_transpose(img, in_place=True)
    if img.mode == "F" or img.mode.startswith("I"):  # 16-bit, 32-bit integer or float grey
        return np.repeat(_to_8bit(np.asarray(img))[..., None], 3, axis=2)  # (H, W) -> (H, W, 3)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8)


def read_image(path: str | Path, limits: ImageLimits | None = None) -> np.ndarray:
    """Read a photograph as ``(H, W, 3)`` uint8 RGB as displayed (the module docstring says how).

    Args:
        limits: When given, an image whose header falls below them is refused before its pixels are decoded.
    """
    path = Path(path)
    try:
        return to_rgb(_open(path, limits))
    except ValueError as err:
        raise DataError(path, f"refused: {err}") from err


def read_mask(path: str | Path) -> np.ndarray:
    """Read a binary lesion mask as ``(H, W)`` bool: first channel > 0 (its own EXIF orientation applied)."""
    path = Path(path)
    img = _open(path)
    ImageOps.exif_transpose(img, in_place=True)
    if img.mode == "P":
        img = img.convert("RGB")
    arr = np.asarray(img)
    if arr.ndim == 3:
        arr = arr[..., 0]  # (H, W, C) -> (H, W): the lesion channel, never a max over channels
    return arr > 0


def load_masks(record: Record, size_hw: tuple[int, int]) -> np.ndarray | None:
    """Stack a record's lesion masks as ``(L, H, W)`` bool; an absent file is an all-zero lesion.

    ``size_hw`` is the photo's size as displayed; a mask of that size turned a quarter is refused (module docstring).
    """
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
            turned = mask.shape == size_hw[::-1]
            raise DataError(
                mask_path,
                f"mask size {mask.shape[1]}x{mask.shape[0]} differs from its image "
                f"{record.image_path.name} ({size_hw[1]}x{size_hw[0]}"
                + (" as displayed, its EXIF orientation applied): the mask is turned a quarter against it; "
                   "rotate the mask to match the upright photo" if turned else ")"),
            )
        masks[i] = mask
    return masks


def load_sample(record: Record) -> Sample:
    """Decode one record's image and masks."""
    image = read_image(record.image_path)
    masks = load_masks(record, image.shape[:2])
    return Sample(name=record.name, image=image, masks=masks, grade=record.grade, path=record.image_path)
