"""The procedural synthetic fundus generator: determinism, lesion colours, grades, layout, CLI."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from drcollab.cli import app
from drcollab.constants import LESIONS
from drcollab.data import synthetic
from drcollab.data.generic import read_generic
from drcollab.data.io import load_sample
from drcollab.data.synthetic import generate_fundus, noisy_label, pick_masked, target_grade, write_synthetic
from drcollab.errors import DataError


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _distance(size: int, point: tuple[float, float]) -> np.ndarray:
    ys, xs = np.mgrid[:size, :size]
    return np.hypot(xs - point[0], ys - point[1])


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    a = _files(write_synthetic(tmp_path / "a", n=6, size=96, seed=3, pixel_fraction=0.5, progress=False))
    b = _files(write_synthetic(tmp_path / "b", n=6, size=96, seed=3, pixel_fraction=0.5, progress=False))
    c = _files(write_synthetic(tmp_path / "c", n=6, size=96, seed=4, pixel_fraction=0.5, progress=False))
    assert len(a) == 1 + 6 + 3 * 4  # labels.csv, images, four masks for each of 3 masked images
    assert a == b
    assert all(a[k] != c[k] for k in a if k.startswith("images/"))


def test_image_depends_on_seed_and_index_only(tmp_path: Path) -> None:
    short = _files(write_synthetic(tmp_path / "short", n=3, size=80, seed=1, progress=False))
    long = _files(write_synthetic(tmp_path / "long", n=7, size=80, seed=1, progress=False))
    assert all(long[k] == v for k, v in short.items() if k != "labels.csv")
    assert long["labels.csv"].startswith(short["labels.csv"])
    assert np.array_equal(generate_fundus(1, 80, index=2).image, Image.open(tmp_path / "long/images/synth_00002.png"))


def _colour_stats(cases: list[synthetic.SyntheticFundus]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Mean RGB under each lesion's masks, and median RGB of a retina ring around them (lesions excluded)."""
    inside: dict[str, list[np.ndarray]] = {k: [] for k in LESIONS}
    around: dict[str, list[np.ndarray]] = {k: [] for k in LESIONS}
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (15, 15))
    for f in cases:
        any_lesion = cv2.dilate(f.masks.any(0).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        fov = _distance(f.image.shape[0], f.geometry.centre) < 0.95 * f.geometry.radius
        for k, mask in zip(LESIONS, f.masks, strict=True):
            ring = (cv2.dilate(mask.astype(np.uint8), kernel) > 0) & ~any_lesion & fov
            inside[k].append(f.image[mask])
            around[k].append(f.image[ring])
    return {k: (np.concatenate(inside[k]).mean(0), np.median(np.concatenate(around[k]), 0)) for k in LESIONS}


def _hue(rgb: np.ndarray) -> float:
    """Hue in degrees of an RGB colour with R >= G >= B (the red-to-yellow range of a fundus)."""
    return 60 * (rgb[1] - rgb[2]) / (rgb[0] - rgb[2])


def test_lesion_masks_lie_where_the_lesion_colour_is() -> None:
    cases = [generate_fundus(seed, 256, grade=grade) for seed in range(3) for grade in (3, 4)]
    stats = _colour_stats(cases)
    for k in LESIONS:
        assert sum(int(f.masks[LESIONS.index(k)].sum()) for f in cases) > 20, f"{k} never drawn"
    brightness = {k: (m.mean(), r.mean()) for k, (m, r) in stats.items()}
    redness = {k: (m[0] / m.sum(), r[0] / r.sum()) for k, (m, r) in stats.items()}
    hue = {k: (_hue(m), _hue(r)) for k, (m, r) in stats.items()}  # red 0, orange ~20, yellow 60 degrees
    saturation = {k: (1 - m.min() / m.max(), 1 - r.min() / r.max()) for k, (m, r) in stats.items()}
    for k in ("MA", "HE"):  # darker and redder
        assert brightness[k][0] < 0.85 * brightness[k][1], (k, stats[k])
        assert redness[k][0] > redness[k][1] and hue[k][0] < hue[k][1], (k, stats[k])
    assert brightness["EX"][0] > 1.2 * brightness["EX"][1], stats["EX"]
    assert hue["EX"][0] > hue["EX"][1] + 15, stats["EX"]  # yellower
    assert brightness["SE"][0] > 1.1 * brightness["SE"][1], stats["SE"]  # paler: brighter and less saturated
    assert saturation["SE"][0] < saturation["SE"][1] - 0.05, stats["SE"]


def test_masks_inside_fov_and_off_the_disc() -> None:
    for seed in range(4):
        f = generate_fundus(seed, 192, grade=4)
        any_lesion = f.masks.any(0)
        assert any_lesion.any()
        assert not (any_lesion & (_distance(192, f.geometry.centre) > f.geometry.radius)).any()
        assert not (any_lesion & (_distance(192, f.geometry.disc) < 1.15 * f.geometry.disc_radius)).any()
        assert f.image[_distance(192, f.geometry.centre) > f.geometry.radius + 3].max() < 10  # black outside


@pytest.mark.parametrize("grade", range(5))
def test_masks_follow_the_grade(grade: int) -> None:
    for seed in range(4):
        f = generate_fundus(seed, 128, grade=grade, label_noise=0.0)
        present = dict(zip(LESIONS, f.masks.any((1, 2)), strict=True))
        assert f.grade == f.true_grade == grade
        assert present["MA"] == (grade > 0)
        if grade <= 1:
            assert not (present["HE"] or present["EX"] or present["SE"])
        else:
            assert present["HE"] or present["EX"] or present["SE"]
        he = [les.centre for les in f.lesions if les.kind == "HE"]
        quadrants = {int(x >= f.geometry.centre[0]) + 2 * int(y >= f.geometry.centre[1]) for x, y in he}
        if grade >= 3:
            assert quadrants == {0, 1, 2, 3} and len(he) >= 16
        else:
            assert len(quadrants) <= 3
        assert (f.burden.nv_tufts > 0) == (grade == 4)


def test_microaneurysms_are_a_few_pixels_at_512() -> None:
    f = generate_fundus(0, 512, grade=1)
    count, _, stats, _ = cv2.connectedComponentsWithStats(f.masks[0].astype(np.uint8), connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    assert count - 1 == f.burden.ma > 0
    assert areas.min() >= 5 and areas.max() <= 40  # radius 1-3 px discs


def test_grades_all_occur_and_burden_rises_with_grade() -> None:
    fundi = [generate_fundus(7, 128, index=i) for i in range(40)]
    assert set(f.grade for f in fundi) == set(range(5))
    assert Counter(target_grade(7, i) for i in range(40)) == {0: 12, 1: 4, 2: 12, 3: 8, 4: 4}
    pixels = [np.mean([f.masks.sum() for f in fundi if f.true_grade == g]) for g in range(5)]
    he = [np.mean([sum(les.kind == "HE" for les in f.lesions) for f in fundi if f.true_grade == g]) for g in range(5)]
    assert pixels[0] == 0 and all(a < b for a, b in zip(pixels, pixels[1:], strict=False)), pixels
    assert he[0] == he[1] == 0 and he[1] < he[2] < he[3] <= he[4], he


def test_label_noise_is_deterministic_and_one_step() -> None:
    labels = [noisy_label(0, i, target_grade(0, i), 0.05) for i in range(1000)]
    truth = [target_grade(0, i) for i in range(1000)]
    moved = [(t, lab) for t, lab in zip(truth, labels, strict=True) if t != lab]
    assert 20 <= len(moved) <= 80
    assert all(abs(t - lab) == 1 for t, lab in moved)
    assert labels == [noisy_label(0, i, target_grade(0, i), 0.05) for i in range(1000)]
    assert all(noisy_label(0, i, g, 0.0) == g for i in range(50) for g in range(5))


def test_pick_masked_spreads_over_grades() -> None:
    grades = [target_grade(0, i) for i in range(40)]
    picked = pick_masked(grades, 0.25)
    assert len(picked) == 10
    assert {grades[i] for i in picked} == set(range(5))
    assert pick_masked(grades, 0.0) == set() and len(pick_masked(grades, 1.0)) == 40
    assert len(pick_masked(grades, 0.001)) == 1  # a positive fraction keeps at least one


def test_layout_and_generic_reader(tmp_path: Path) -> None:
    root = write_synthetic(tmp_path / "ds", n=20, size=64, seed=2, pixel_fraction=0.25, progress=False)
    lines = (root / "labels.csv").read_text().splitlines()
    assert lines[0] == "path,grade,dme" and len(lines) == 21
    rows = [line.split(",") for line in lines[1:]]
    assert all((root / path).is_file() and path.startswith("images/synth_") for path, _, _ in rows)
    masked = sorted(p.stem for p in (root / "masks" / "MA").glob("*.png"))
    assert len(masked) == 5
    for lesion in LESIONS:  # all four masks for each pixel-labelled image, none for the others
        assert sorted(p.stem for p in (root / "masks" / lesion).iterdir()) == masked
    mask = Image.open(root / "masks" / "HE" / f"{masked[-1]}.png")
    assert mask.mode == "L" and mask.size == (64, 64) and set(np.unique(np.asarray(mask))) <= {0, 255}
    records = read_generic(root)
    assert [(r.name, r.grade, r.dme) for r in records] == [(Path(p).stem, int(g), int(d)) for p, g, d in rows]
    assert sorted(r.name for r in records if r.has_masks) == masked
    record = next(r for r in records if r.name == masked[-1])
    expected = generate_fundus(2, 64, index=int(record.name.split("_")[1]))
    sample = load_sample(record)
    assert np.array_equal(sample.image, expected.image) and np.array_equal(sample.masks, expected.masks)


def test_dme_follows_the_hard_exudates_distance_to_the_fovea() -> None:
    seen = Counter()
    for i in range(40):
        f = generate_fundus(0, 128, index=i)
        ex = f.masks[LESIONS.index("EX")]
        near = ex & (_distance(128, f.geometry.fovea) <= 2 * f.geometry.disc_radius)  # one disc diameter
        assert f.dme == (2 if near.any() else 1 if ex.any() else 0), i
        seen[f.dme] += 1
    assert set(seen) == {0, 1, 2}  # every DME risk occurs in a small set


def test_generic_reader_reads_an_optional_dme_column(tmp_path: Path) -> None:
    root = write_synthetic(tmp_path / "ds", n=2, size=64, pixel_fraction=0, progress=False)
    (root / "labels.csv").write_text("path,grade,dme\nimages/synth_00000.png,2,\nimages/synth_00001.png,1,1\n")
    assert [r.dme for r in read_generic(root)] == [None, 1]
    (root / "labels.csv").write_text("path,grade\nimages/synth_00000.png,2\n")
    assert read_generic(root)[0].dme is None
    (root / "labels.csv").write_text("path,grade,dme\nimages/synth_00000.png,2,3\n")
    with pytest.raises(DataError, match=r"labels.csv.*row 2: macular edema risk '3' is not an integer in 0-2"):
        read_generic(root)


def test_interrupted_run_writes_no_labels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = synthetic.generate_fundus

    def failing(seed: int, size: int, index: int = 0, **kwargs: object) -> synthetic.SyntheticFundus:
        if index == 2:
            raise KeyboardInterrupt
        return real(seed, size, index=index, **kwargs)

    monkeypatch.setattr(synthetic, "generate_fundus", failing)
    with pytest.raises(KeyboardInterrupt):
        write_synthetic(tmp_path / "ds", n=4, size=64, progress=False)
    assert not (tmp_path / "ds" / "labels.csv").exists()
    assert len(list((tmp_path / "ds" / "images").glob("*.png"))) == 2


def test_bad_arguments_name_the_value(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="size must be in"):
        generate_fundus(0, 32)
    with pytest.raises(ValueError, match="grade must be in"):
        generate_fundus(0, 64, grade=5)
    with pytest.raises(ValueError, match="pixel_fraction must be in"):
        write_synthetic(tmp_path / "x", n=2, size=64, pixel_fraction=1.5)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty"):
        write_synthetic(tmp_path / "full", n=2, size=64, progress=False)


def test_unpacks_as_image_masks_grade() -> None:
    image, masks, grade = generate_fundus(5, 64, index=3)
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert masks.shape == (4, 64, 64) and masks.dtype == np.bool_
    assert grade in range(5)


def test_cli_synth(tmp_path: Path) -> None:
    out, sheet = tmp_path / "ds", tmp_path / "sheet.png"
    args = ["synth", "--n", "6", "--size", "64", "--out", str(out), "--pixel-fraction", "0.5"]
    result = CliRunner().invoke(app, [*args, "--contact-sheet", str(sheet)])
    assert result.exit_code == 0, result.output
    assert f"wrote 6 images (3 with masks) to {out}" in result.output
    hist = Counter(int(line.split(",")[1]) for line in (out / "labels.csv").read_text().splitlines()[1:])
    assert "grades: " + ", ".join(f"{g}: {hist.get(g, 0)}" for g in range(5)) in result.output
    assert np.asarray(Image.open(sheet)).shape == (2 * (64 + 18), 8 * 64, 3)  # 6 pairs, 4 pairs per row
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 1 and f"error: {out}: folder is not empty" in again.output
    assert CliRunner().invoke(app, [*args, "--n", "2", "--overwrite"]).exit_code == 0
    assert len((out / "labels.csv").read_text().splitlines()) == 3
    assert len(list((out / "images").iterdir())) == 2
