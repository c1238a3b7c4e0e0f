"""IDRiD readers on the real training split (``idrid_root``) and on tiny fake layouts; mask storage variants."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import tifffile
from fake_layouts import make_idrid
from PIL import Image

from drcollab.constants import LESIONS
from drcollab.data.idrid import read_idrid_grading, read_idrid_segmentation
from drcollab.data.io import load_sample, read_mask


def _tiff_shape(path: Path) -> tuple[int, int]:
    """(H, W) from the TIFF header, without decoding pixels."""
    with tifffile.TiffFile(path) as tif:
        return tif.pages[0].shape[:2]


def _first_channel_levels(path: Path) -> set[int]:
    """The distinct values of a mask's first channel, palette expanded (decoded with tifffile, not PIL)."""
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        arr = page.asarray()
        if arr.ndim == 3:
            arr = arr[..., 0]  # (H, W, C) -> (H, W)
        levels = np.flatnonzero(np.bincount(arr.ravel(), minlength=256))
        if page.photometric == tifffile.PHOTOMETRIC.PALETTE:
            levels = page.colormap[0][levels]  # palette index -> red value
        return set(levels.tolist())


def test_real_segmentation_counts(idrid_root: Path) -> None:
    records = read_idrid_segmentation(idrid_root)
    assert len(records) == 54
    assert [r.name for r in records][:2] == ["IDRiD_01", "IDRiD_02"]
    counts = {les: sum(r.mask_paths[i] is not None for r in records) for i, les in enumerate(LESIONS)}
    assert counts == {"MA": 54, "HE": 53, "EX": 54, "SE": 26}
    by_name = {r.name: r for r in records}
    assert by_name["IDRiD_43"].mask_paths[LESIONS.index("HE")] is None  # no haemorrhage file for IDRiD_43
    assert all(r.grade is None and r.source == "idrid-seg" for r in records)


def test_real_grading_counts(idrid_root: Path) -> None:
    records = read_idrid_grading(idrid_root)
    assert len(records) == 413
    assert Counter(r.grade for r in records) == {0: 134, 1: 20, 2: 136, 3: 74, 4: 49}
    assert records[0].name == "IDRiD_001" and records[0].grade == 3  # first CSV row
    assert all(r.image_path.is_file() and r.mask_paths is None for r in records)


def test_real_macular_edema_counts(idrid_root: Path) -> None:
    """IDRiD's "Risk of macular edema" column: the official training distribution 177 / 41 / 195."""
    records = read_idrid_grading(idrid_root)
    assert Counter(r.dme for r in records) == {0: 177, 1: 41, 2: 195}
    assert records[0].dme == 2  # IDRiD_001,3,2


def test_real_masks_sized_like_their_image(idrid_root: Path) -> None:
    checked = 0
    for record in read_idrid_segmentation(idrid_root):
        width, height = Image.open(record.image_path).size  # header only
        for mask_path in filter(None, record.mask_paths):
            assert _tiff_shape(mask_path) == (height, width), mask_path
            checked += 1
    assert checked == 54 + 53 + 54 + 26


# Decoding all 187 masks takes 10-25 s on the shared 2-core CPU: every 9th image by default, all under `slow`.
@pytest.mark.parametrize("every", [pytest.param(9, id="subset"), pytest.param(1, id="all", marks=pytest.mark.slow)])
def test_real_masks_binary(idrid_root: Path, every: int) -> None:
    records = read_idrid_segmentation(idrid_root)[::every]
    for mask_path in (p for r in records for p in r.mask_paths if p is not None):
        levels = _first_channel_levels(mask_path)
        assert len(levels) == 2 and 0 in levels, f"{mask_path}: first-channel values {levels}"  # non-empty, binary


def test_real_sample_decodes(idrid_root: Path) -> None:
    record = read_idrid_segmentation(idrid_root)[0]  # IDRiD_01: MA, HE, EX masks, no SE file
    sample = load_sample(record)
    assert sample.image.shape == (2848, 4288, 3)
    assert sample.masks.shape == (4, 2848, 4288)
    assert sample.masks[:3].any(axis=(1, 2)).all()
    assert not sample.masks[3].any()
    with tifffile.TiffFile(record.mask_paths[0]) as tif:
        assert sample.masks[0].sum() == np.count_nonzero(tif.pages[0].asarray())


def test_fake_layout_both_splits(tmp_path: Path) -> None:
    root = make_idrid(make_idrid(tmp_path / "IDRiD", "train"), "test")
    for split in ("train", "test"):
        seg = read_idrid_segmentation(root, split)
        assert [r.name for r in seg] == ["IDRiD_01", "IDRiD_02", "IDRiD_03"]
        assert [[p is not None for p in r.mask_paths] for r in seg] == [
            [True, True, True, True],
            [True, False, True, False],
            [True, True, True, False],
        ]
        assert all("Testing" in str(r.image_path) for r in seg) == (split == "test")
        grades = read_idrid_grading(root, split)
        assert [r.name for r in grades] == ["IDRiD_001", "IDRiD_002", "IDRiD_003", "IDRiD_004"]
        assert [r.grade for r in grades] == [0, 4, 2, 2]


def test_fake_layout_tolerates_case_and_part_root(tmp_path: Path) -> None:
    root = make_idrid(tmp_path / "IDRiD")
    images = root / "A. Segmentation" / "1. Original Images" / "a. Training Set"
    (images / "IDRiD_02.jpg").rename(images / "IDRiD_02.JPG")
    (root / "A. Segmentation" / "1. Original Images").rename(root / "A. Segmentation" / "1. original images")
    records = read_idrid_segmentation(root / "A. Segmentation")  # the part folder itself as root
    assert [r.image_path.name for r in records] == ["IDRiD_01.jpg", "IDRiD_02.JPG", "IDRiD_03.jpg"]


def test_grading_csv_names_with_suffix(tmp_path: Path) -> None:
    root = make_idrid(tmp_path / "IDRiD")
    csv = root / "B. Disease Grading" / "2. Groundtruths" / "a. IDRiD_Disease Grading_Training Labels.csv"
    csv.write_text("\ufeffImage name ,Retinopathy grade\nIDRiD_001.jpg,1\n\n")  # BOM, spaced header, blank line
    assert [(r.name, r.grade) for r in read_idrid_grading(root)] == [("IDRiD_001", 1)]


def _write_tiff(path: Path, arr: np.ndarray, **kwargs: object) -> Path:
    tifffile.imwrite(path, arr, compression="deflate", **kwargs)
    return path


@pytest.mark.parametrize("channels", [3, 4])
def test_rgb_and_rgba_masks_read_the_red_channel(tmp_path: Path, channels: int) -> None:
    rng = np.random.default_rng(0)
    rgba = np.zeros((6, 9, channels), dtype=np.uint8)  # (H, W, C)
    rgba[..., 0] = (rng.random((6, 9)) > 0.6) * 255  # lesion in red
    rgba[..., 1] = (rng.random((6, 9)) > 0.5) * 255  # noise in green: must be ignored
    if channels == 4:
        rgba[..., 3] = 255  # alpha 255 everywhere: a max over channels would call every pixel lesion
    mask = read_mask(_write_tiff(tmp_path / "m.tif", rgba, photometric="rgb"))
    np.testing.assert_array_equal(mask, rgba[..., 0] > 0)
    assert 0 < mask.sum() < mask.size


def test_palette_mask_reads_the_palette_red(tmp_path: Path) -> None:
    index = np.zeros((6, 9), dtype=np.uint8)  # (H, W) palette indices
    index[1:3, 2:7] = 1
    index[4, 0] = 2  # index 2 is green in the palette: no red, so not lesion
    colormap = np.zeros((3, 256), dtype=np.uint16)
    colormap[0, 1] = 65280  # red, as in IDRiD's own files
    colormap[1, 2] = 65280
    path = _write_tiff(tmp_path / "p.tif", index, photometric="palette", colormap=colormap)
    assert Image.open(path).mode == "P"
    np.testing.assert_array_equal(read_mask(path), index == 1)
