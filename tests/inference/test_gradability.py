"""The gradability check: each kind of ungradable photo flagged with its reason and never graded; a good one passes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from drcollab.cli import app
from drcollab.data.synthetic import generate_fundus
from drcollab.inference.gradability import GradabilityConfig, check_gradable

GOOD = generate_fundus(3, 256).image


def exposed(image: np.ndarray, gain: float) -> np.ndarray:
    return np.clip(image.astype(np.float32) * gain, 0, 255).astype(np.uint8)


# name -> (image, the reason's first words)
UNGRADABLE = {
    "blank": (np.zeros((256, 256, 3), np.uint8), "no field of view: "),
    "blurred": (cv2.GaussianBlur(GOOD, (0, 0), 4), "out of focus: "),
    "dark": (exposed(GOOD, 0.1), "under-exposed: "),
    "saturated": (exposed(GOOD, 5), "over-exposed: "),
    "cropped": (np.ascontiguousarray(generate_fundus(3, 512).image[160:352, 160:352]), "cropped: "),
}


def test_a_good_synthetic_fundus_is_gradable() -> None:
    for seed, size in [(0, 128), (3, 256), (5, 512)]:
        gradable, reasons, measures = check_gradable(generate_fundus(seed, size).image)
        assert gradable and reasons == [], (seed, size, measures)
        assert set(measures) == {"sharpness", "brightness", "dark_fraction", "bright_fraction", "fov_fraction"}


@pytest.mark.parametrize("name", list(UNGRADABLE))
def test_each_ungradable_kind_is_flagged_with_its_reason(name: str) -> None:
    image, reason = UNGRADABLE[name]
    gradable, reasons, _ = check_gradable(image)
    assert not gradable and any(r.startswith(reason) for r in reasons), reasons


def test_thresholds_are_config_values() -> None:
    blurred = UNGRADABLE["blurred"][0]
    assert check_gradable(blurred, GradabilityConfig(min_sharpness=0.0))[0]
    assert not check_gradable(GOOD, GradabilityConfig(min_brightness=254.0))[0]


def test_predict_lists_ungradable_images_with_reasons_and_no_grade(tiny_bundle: Path, tmp_path: Path) -> None:
    folder = tmp_path / "clinic"
    folder.mkdir()
    Image.fromarray(GOOD).save(folder / "good.png")
    for name, (image, _) in UNGRADABLE.items():
        Image.fromarray(image).save(folder / f"{name}.png")
    Image.new("RGB", (8, 8), (200, 80, 40)).save(folder / "tiny.png")
    Image.new("RGB", (8000, 100), (200, 80, 40)).save(folder / "strip.png")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["predict", str(folder), "--checkpoint", str(tiny_bundle), "--out", str(out),
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "predicted 8 images" in result.output and "7 ungradable" in result.output and "0 failed" in result.output

    summary = json.loads((out / "predictions.json").read_text())
    assert summary["failures"] == [] and summary["counts"]["graded"] == 1 and summary["counts"]["ungradable"] == 7
    records = {Path(r["id"]).stem: r for r in summary["predictions"]}
    expected = {**{k: v[1] for k, v in UNGRADABLE.items()}, "tiny": "too small: ", "strip": "implausible shape: "}
    for name, reason in expected.items():
        r = records[name]
        assert r["gradable"] is False and r["ungradable_reasons"][0].startswith(reason), r
        assert (r["grade"], r["grade_name"], r["referable"], r["referable_probability"]) == (None,) * 4
        assert r["probabilities"] == [] and r["lesion_area"] == {} and r["outputs"] == {}
        assert (r["dme"], r["dme_name"], r["dme_probabilities"]) == (None, None, [])
        assert not list((out / "images" / r["id"]).glob("*.png"))  # no lesion maps claimed or written
    good = records["good"]
    assert good["gradable"] is True and good["ungradable_reasons"] == [] and good["grade"] is not None
    assert set(good["quality"]) >= {"sharpness", "brightness"} and records["tiny"]["quality"] == {}

    rows = {Path(r["id"]).stem: r for r in csv.DictReader((out / "predictions.csv").open())}
    assert list(rows["good"])[:8] == ["id", "path", "width", "height", "gradable", "ungradable_reasons", "grade",
                                      "grade_name"]
    assert rows["good"]["gradable"] == "True" and rows["good"]["ungradable_reasons"] == ""
    for name, reason in expected.items():
        row = rows[name]
        assert row["gradable"] == "False" and row["ungradable_reasons"].startswith(reason)
        graded = [row["grade"], row["grade_name"], row["referable"], row["referable_probability"], row["overlay"]]
        graded += [row["dme"], row["dme_name"]] + [row[f"p_dme{d}"] for d in range(3)]
        assert graded + [row[f"p_grade{g}"] for g in range(5)] == [""] * 15
    assert (rows["strip"]["width"], rows["strip"]["height"]) == ("8000", "100")
