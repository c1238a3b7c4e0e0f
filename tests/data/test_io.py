"""Photographs are read as every viewer shows them: EXIF orientation applied, 16-bit and float pixels scaled to
8 bits, and a decompression bomb or a multi-page TIFF refused with one message naming the file."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from drcollab.constants import LESIONS
from drcollab.data.io import load_sample, read_image, read_mask
from drcollab.data.records import Record
from drcollab.data.synthetic import generate_fundus
from drcollab.errors import DataError
from helpers import jpeg_declaring, png_declaring, save_turned

UPRIGHT = np.ascontiguousarray(generate_fundus(0, 96).image[:, 8:88])  # (96, 80, 3): taller than wide


def refused(path: Path, *fragments: str) -> pytest.RaisesContext:
    """Expect a DataError whose message starts with ``path`` and contains every fragment, in order."""
    return pytest.raises(DataError, match="^" + re.escape(str(path)) + ": .*" + ".*".join(map(re.escape, fragments)))


@pytest.mark.parametrize(
    ("name", "data"),
    [("bomb.png", png_declaring(65000, 65000, rows=1)), ("bomb.jpg", jpeg_declaring(65000, 65000))],
)
def test_a_decompression_bomb_is_refused_naming_the_file_and_its_declared_size(
    tmp_path: Path, name: str, data: bytes
) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    assert len(data) < 1000
    with refused(path, "header declares 65000x65000 px (4225 Mpx)", "decompression bomb"):
        read_image(path)


@pytest.mark.parametrize(("suffix", "tolerance"), [(".jpg", 2.0), (".png", 0.0), (".tif", 0.0)])
def test_a_photo_stored_sideways_with_exif_orientation_6_reads_upright(
    tmp_path: Path, suffix: str, tolerance: float
) -> None:
    upright, turned = tmp_path / f"upright{suffix}", tmp_path / f"turned{suffix}"
    Image.fromarray(UPRIGHT).save(upright)
    save_turned(UPRIGHT, turned)
    assert Image.open(turned).size == (96, 80) or suffix == ".tif"  # stored sideways (Pillow turns TIFFs itself)
    a, b = read_image(upright), read_image(turned)
    assert a.shape == b.shape == (96, 80, 3)
    assert np.abs(a.astype(int) - b.astype(int)).mean() <= tolerance  # JPEG noise only, never a half turn


def test_a_mask_drawn_on_the_stored_pixels_of_a_turned_photo_is_refused(tmp_path: Path) -> None:
    photo = tmp_path / "eye.png"
    save_turned(UPRIGHT, photo)
    good, sideways = tmp_path / "good_MA.png", tmp_path / "sideways_MA.png"
    mask = np.zeros((96, 80), np.uint8)
    mask[10:20, 30:40] = 255
    Image.fromarray(mask).save(good)
    Image.fromarray(np.ascontiguousarray(np.rot90(mask))).save(sideways)  # (80, 96): the stored orientation
    sample = load_sample(Record("eye", photo, mask_paths=(good,) + (None,) * (len(LESIONS) - 1)))
    assert sample.image.shape == (96, 80, 3) and np.array_equal(sample.masks[0], mask > 0)
    with refused(sideways, "mask size 96x80 differs from its image eye.png (80x96 as displayed",
                 "turned a quarter", "rotate the mask"):
        load_sample(Record("eye", photo, mask_paths=(sideways,) + (None,) * (len(LESIONS) - 1)))


def test_a_mask_with_its_own_exif_orientation_is_read_upright(tmp_path: Path) -> None:
    mask = np.zeros((96, 80, 3), np.uint8)
    mask[10:20, 30:40] = 255
    save_turned(mask, tmp_path / "mask.png")
    assert np.array_equal(read_mask(tmp_path / "mask.png"), mask[..., 0] > 0)


GREY = UPRIGHT[..., 1]  # (96, 80) uint8


@pytest.mark.parametrize(
    ("suffix", "pixels"),
    [
        (".png", GREY.astype(np.uint16) * 257),  # 16-bit grey: 255 -> 65535
        (".tif", GREY.astype(np.uint16) * 257),
        (".tif", GREY.astype(np.float32) / 255),  # float in [0, 1]
        (".tif", GREY.astype(np.float32) * 4.0 - 100.0),  # float of another range: stretched from min to max
    ],
    ids=["16-bit-png", "16-bit-tiff", "float-0-1-tiff", "float-other-range-tiff"],
)
def test_16_bit_and_float_grey_images_are_scaled_to_8_bits_not_clipped(
    tmp_path: Path, suffix: str, pixels: np.ndarray
) -> None:
    path = tmp_path / f"deep{suffix}"
    Image.fromarray(pixels).save(path)
    image = read_image(path)
    assert image.shape == (96, 80, 3) and image.dtype == np.uint8
    expected = GREY if pixels.min() >= 0 else np.round((GREY - GREY.min()) / np.ptp(GREY) * 255)
    assert np.abs(image[..., 0].astype(int) - expected.astype(int)).max() <= 1
    assert np.array_equal(image[..., 0], image[..., 2])  # grey repeated over 3 channels


def test_a_float_image_with_a_nan_pixel_is_refused(tmp_path: Path) -> None:
    pixels = GREY.astype(np.float32) / 255
    pixels[5, 5] = np.nan
    Image.fromarray(pixels).save(tmp_path / "nan.tif")
    with refused(tmp_path / "nan.tif", "1 pixels are NaN or infinite"):
        read_image(tmp_path / "nan.tif")


def test_a_multi_page_tiff_is_refused_with_its_page_count(tmp_path: Path) -> None:
    path = tmp_path / "pages.tif"
    page = Image.fromarray(UPRIGHT)
    page.save(path, save_all=True, append_images=[page, page])
    with refused(path, "multi-page TIFF (3 pages)", "save each page as its own file"):
        read_image(path)
