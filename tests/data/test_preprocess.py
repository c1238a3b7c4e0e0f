"""Field-of-view detection, crop/resize geometry, mask survival and contrast normalisation."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from drcollab.config import PreprocessConfig
from drcollab.data.fov import detect_fov
from drcollab.data.io import load_sample, read_image, read_mask
from drcollab.data.preprocess import Geometry, normalise_contrast, preprocess
from drcollab.data.records import Record

SEG = "A. Segmentation"
IMAGES = f"{SEG}/1. Original Images/a. Training Set"
GT = f"{SEG}/2. All Segmentation Groundtruths/a. Training Set"
MASK_DIRS = ("1. Microaneurysms", "2. Haemorrhages", "3. Hard Exudates", "4. Soft Exudates")


def idrid_record(root: Path, number: int, lesions: tuple[str, ...] = ("MA", "HE", "EX", "SE")) -> Record:
    """The IDRiD segmentation record ``IDRiD_<number>``; lesions not asked for (or without a file) are None."""
    name = f"IDRiD_{number:02d}"
    paths = []
    for folder, lesion in zip(MASK_DIRS, ("MA", "HE", "EX", "SE"), strict=True):
        path = root / GT / folder / f"{name}_{lesion}.tif"
        paths.append(path if lesion in lesions and path.is_file() else None)
    return Record(name=name, image_path=root / IMAGES / f"{name}.jpg", mask_paths=tuple(paths), source="idrid-seg")


def synthetic_fundus(h: int, w: int, cx: float, cy: float, r: float, seed: int = 0) -> np.ndarray:
    """An orange textured disc on a noisy black background, ``(h, w, 3)`` uint8."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    inside = (xx - cx) ** 2 + (yy - cy) ** 2 <= r**2  # (h, w)
    img = rng.integers(0, 12, size=(h, w, 3)).astype(np.float32)  # dark noisy background
    disc = np.array([200, 100, 40], np.float32) + rng.normal(0, 8, size=(h, w, 1))
    img[inside] = disc[inside]
    for _ in range(6):  # dark "haemorrhages", some touching nothing, all inside the disc
        a = rng.uniform(0, 2 * np.pi)
        d = rng.uniform(0, 0.7 * r)
        blob = (xx - cx - d * np.cos(a)) ** 2 + (yy - cy - d * np.sin(a)) ** 2 <= (0.05 * r) ** 2
        img[blob] = (30, 10, 5)
    return np.clip(img, 0, 255).astype(np.uint8)


# (h, w, cx, cy, r): full circles, off-centre, and circles cut at top and bottom like IDRiD
FOV_CASES = [
    (600, 800, 400.0, 300.0, 250.0),
    (700, 700, 351.3, 348.6, 330.0),
    (500, 900, 430.0, 250.0, 310.0),  # cut at top and bottom
    (1424, 2144, 1003.7, 712.2, 860.0),  # IDRiD-like proportions, cut at top/bottom, shrunk for the FOV search
]


@pytest.mark.parametrize(("h", "w", "cx", "cy", "r"), FOV_CASES)
def test_detect_fov_recovers_synthetic_circle(h: int, w: int, cx: float, cy: float, r: float) -> None:
    fov = detect_fov(synthetic_fundus(h, w, cx, cy, r))
    tol = 1.5 * max(1.0, max(h, w) / 1024)  # the search runs at <= 1024 px
    assert abs(fov.centre[0] - cx) < tol and abs(fov.centre[1] - cy) < tol, fov
    assert abs(fov.radius - r) < tol, fov


def test_detect_fov_ignores_notch_and_outside_speck() -> None:
    img = synthetic_fundus(600, 800, 400, 300, 250)
    img[40:70, 600:660] = (200, 100, 40)  # a bright tab touching the disc (like IDRiD's notch)
    img[500:520, 20:40] = (220, 220, 220)  # a bright label far outside
    fov = detect_fov(img)
    assert np.hypot(fov.centre[0] - 400, fov.centre[1] - 300) < 2 and abs(fov.radius - 250) < 2


def test_detect_fov_frame_filled_by_retina_uses_bounding_square() -> None:
    """No circular outline inside the frame: the FOV is the bounding square of the bright region."""
    img = np.full((200, 300, 3), (180, 90, 30), np.uint8)  # retina cut on all four sides
    img[80:90, 100:110] = 10  # a dark spot inside: a hole, not an outline
    fov = detect_fov(img)
    assert fov.centre == pytest.approx((149.5, 99.5)) and fov.radius == pytest.approx(150.0)


def test_detect_fov_refuses_black_image() -> None:
    with pytest.raises(ValueError, match="no field of view"):
        detect_fov(np.zeros((300, 400, 3), np.uint8))


def test_detect_fov_on_real_idrid(idrid_root: Path) -> None:
    image = read_image(idrid_root / IMAGES / "IDRiD_01.jpg")  # (2848, 4288, 3)
    fov = detect_fov(image)
    h, w = image.shape[:2]
    # the disc spans columns ~288..3726 and is cut at the top and bottom rows
    assert 1650 < fov.radius < 1800
    assert abs(fov.centre[0] - (288 + 3726) / 2) < 30 and abs(fov.centre[1] - h / 2) < 60
    assert 2 * fov.radius > h and fov.centre[0] + fov.radius < w


def test_preprocess_real_idrid_geometry_and_fov(idrid_root: Path) -> None:
    sample = load_sample(idrid_record(idrid_root, 1))
    out = preprocess(sample.image, sample.masks, PreprocessConfig(size=256))
    x0, y0, x1, y1 = out.geometry.box
    assert y0 < 0 and y1 > 2848  # the square leaves the image at top and bottom: padded
    assert out.image.shape == (256, 256, 3) and out.fov.shape == (256, 256) and out.masks.shape == (4, 256, 256)
    assert not out.fov[0].any() and not out.fov[-1].any() and out.fov[128].sum() > 240
    circle_area = np.pi * out.geometry.radius_out**2
    assert 0.75 < out.fov.sum() / circle_area < 1.02  # a circle less the cut caps
    assert (out.image[~out.fov] == 128).all()


def ma_components_survive(record: Record, size: int, threshold: float = 0.0) -> tuple[int, int]:
    """(number of 8-connected MA components, number with no set pixel after preprocessing)."""
    sample = load_sample(record)
    ma = sample.masks[0]  # (H, W)
    out = preprocess(sample.image, sample.masks, PreprocessConfig(size=size, mask_threshold=threshold))
    n, labels = cv2.connectedComponents(ma.astype(np.uint8), connectivity=8)
    ys, xs = np.nonzero(ma)
    g = out.geometry
    s = g.scale
    resized = np.pad(out.masks[0], 1)  # guard row/column so k1 = S is harmless
    hit = np.zeros(len(ys), dtype=bool)
    # every original pixel overlaps output rows floor((y - y0) s) .. ceil((y + 1 - y0) s) - 1 (at most 2 when s < 1)
    rows = [np.floor((ys - g.box[1]) * s).astype(int), np.ceil((ys + 1 - g.box[1]) * s).astype(int) - 1]
    cols = [np.floor((xs - g.box[0]) * s).astype(int), np.ceil((xs + 1 - g.box[0]) * s).astype(int) - 1]
    for r in rows:
        for c in cols:
            hit |= resized[r + 1, c + 1]
    survived = np.bincount(labels[ys, xs], weights=hit, minlength=n)[1:] > 0  # (n - 1,)
    return n - 1, int((~survived).sum())


@pytest.mark.parametrize("number", [1, 6, 27])
def test_every_microaneurysm_survives_at_1024(idrid_root: Path, number: int) -> None:
    n, lost = ma_components_survive(idrid_record(idrid_root, number, ("MA",)), 1024)
    assert n > 0 and lost == 0


def test_ma_survival_check_detects_losses(idrid_root: Path) -> None:
    """At 256 px a half-area threshold loses microaneurysms (the check can fail); any-coverage keeps all."""
    record = idrid_record(idrid_root, 27, ("MA",))
    n, lost = ma_components_survive(record, 256, threshold=0.5)
    assert lost > 0.2 * n
    assert ma_components_survive(record, 256, threshold=0.0) == (n, 0)


@pytest.mark.slow
def test_every_microaneurysm_survives_all_54(idrid_root: Path) -> None:
    for number in range(1, 55):
        n, lost = ma_components_survive(idrid_record(idrid_root, number, ("MA",)), 1024)
        assert lost == 0, f"IDRiD_{number:02d}: {lost} of {n} MA components lost"


def test_to_original_inverts_crop_resize_on_ramp() -> None:
    g = Geometry(box=(-50, 20, 550, 620), original_hw=(500, 700), size=200, centre=(250.0, 320.0), radius=300.0)
    ramp_x = np.tile(np.arange(700, dtype=np.float32), (500, 1))  # value = column index
    back = g.to_original(g.crop_resize(ramp_x))  # (500, 700)
    assert back.shape == (500, 700)
    inner = back[30:490, 10:540]  # inside the box, away from its edges
    assert np.abs(inner - ramp_x[30:490, 10:540]).max() < 0.05
    assert (back[:, 551:] == 0).all()  # right of the box: fill value


def test_to_original_recovers_real_masks(idrid_root: Path) -> None:
    sample = load_sample(idrid_record(idrid_root, 3, ("HE", "EX")))
    out = preprocess(sample.image, sample.masks, PreprocessConfig(size=1024))
    back = out.geometry.to_original(out.masks.astype(np.float32)) > 0.5  # (4, H, W)
    assert back.shape == sample.masks.shape
    for i in (1, 2):  # HE, EX
        inter = (back[i] & sample.masks[i]).sum()
        dice = 2 * inter / (back[i].sum() + sample.masks[i].sum())
        assert dice > 0.8, f"lesion {i}: dice {dice:.3f}"


def test_geometry_json_round_trip() -> None:
    g = Geometry(box=(-3, 5, 97, 105), original_hw=(90, 120), size=64, centre=(46.5, 54.2), radius=49.7)
    assert Geometry.from_dict(json.loads(json.dumps(g.to_dict()))) == g
    with pytest.raises(ValueError, match="keys"):
        Geometry.from_dict({"box": [0, 0, 1, 1]})
    with pytest.raises(ValueError, match="square"):
        Geometry(box=(0, 0, 10, 12), original_hw=(20, 20), size=8, centre=(5.0, 5.0), radius=5.0)


def test_flat_fov_normalises_to_128_and_background_outside() -> None:
    img = np.zeros((600, 600, 3), np.uint8)
    cv2.circle(img, (300, 300), 280, (180, 90, 30), -1)
    out = preprocess(img, None, PreprocessConfig(size=256, background=77))
    # up to the FOV edge: the masked blur does not mix in the black surround
    assert np.abs(out.image[out.fov].astype(int) - 128).max() <= 2
    assert (out.image[~out.fov] == 77).all()
    assert abs(out.fov.sum() / (np.pi * out.geometry.radius_out**2) - 1) < 0.03
    assert out.masks is None


def test_normalise_false_keeps_raw_crop() -> None:
    img = synthetic_fundus(600, 800, 400, 300, 250)
    out = preprocess(img, None, PreprocessConfig(size=128, normalise=False))
    assert np.array_equal(out.image, out.geometry.crop_resize(img))


def test_sigma_follows_fov_radius() -> None:
    """Normalised outputs at 512 and 256 px agree once shrunk: sigma scales with the radius in output pixels."""
    img = synthetic_fundus(1000, 1200, 600, 500, 450, seed=3)
    big = preprocess(img, None, PreprocessConfig(size=512))
    small = preprocess(img, None, PreprocessConfig(size=256))
    assert abs(big.geometry.radius_out - 2 * small.geometry.radius_out) < 1e-6
    shrunk = cv2.resize(big.image, (256, 256), interpolation=cv2.INTER_AREA).astype(int)
    inner = cv2.erode(small.fov.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    diff = np.abs(shrunk - small.image.astype(int))[inner].mean()
    crop = small.geometry.crop_resize(img)
    fixed = normalise_contrast(crop, small.fov, sigma=big.geometry.radius_out / 30)  # sigma not following the size
    diff_fixed = np.abs(fixed.astype(int) - small.image.astype(int))[inner].mean()
    assert diff < 2.0 and diff_fixed > 2 * diff


def test_preprocess_rejects_bad_inputs() -> None:
    img = synthetic_fundus(200, 300, 150, 100, 90)
    cfg = PreprocessConfig(size=64)
    with pytest.raises(ValueError, match="uint8"):
        preprocess(img.astype(np.float32), None, cfg)
    with pytest.raises(ValueError, match="masks must be"):
        preprocess(img, np.zeros((4, 100, 300), bool), cfg)


def test_read_mask_matches_sample(idrid_root: Path) -> None:
    """The record helper above points at the real files: its MA mask is the one read directly."""
    rec = idrid_record(idrid_root, 1, ("MA",))
    assert rec.mask_paths[1:] == (None, None, None)
    assert read_mask(rec.mask_paths[0]).sum() == load_sample(rec).masks[0].sum() > 0
