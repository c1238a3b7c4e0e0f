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
from drcollab.data.records import Record
from drcollab.data.synthetic import generate_fundus
from drcollab.errors import DataError
from drcollab.inference.gradability import GradabilityConfig, check_gradable
from helpers import write_tiny_bundle

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
        assert set(measures) == {"sharpness", "brightness", "dark_fraction", "bright_fraction", "fov_fraction",
                                 "fov_diameter"}


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


def test_a_field_of_view_too_narrow_for_the_model_is_ungradable_and_one_wide_enough_is_graded() -> None:
    width = check_gradable(GOOD)[2]["fov_diameter"]  # 241 px across
    assert 230 < width < 245
    gradable, reasons, _ = check_gradable(GOOD, model_size=336)  # needs 0.75 x 336 = 252 px
    assert not gradable and reasons == [f"too small: field of view {int(width)} px across, below the 252 px this "
                                        "model needs: use the original photo or one taken at a higher resolution, "
                                        "not a shrunk copy"]
    assert check_gradable(GOOD, model_size=288)[0]  # needs 216 px
    assert check_gradable(GOOD, GradabilityConfig(min_fov_fraction=0), model_size=336)[0]


def test_predict_serve_and_evaluate_refuse_a_field_of_view_below_the_bundles_minimum(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from drcollab.evaluation.evaluate import evaluate
    from drcollab.service.app import create_app

    bundle = write_tiny_bundle(tmp_path / "model", size=128)  # needs a field of view 96 px across
    folder = tmp_path / "clinic"
    folder.mkdir()
    small, large = generate_fundus(0, 96), generate_fundus(1, 160)  # fields of view 89 and 148 px across
    for name, fundus in (("small", small), ("large", large)):
        Image.fromarray(fundus.image).save(folder / f"{name}.png")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["predict", str(folder), "--checkpoint", str(bundle), "--out", str(out),
                                      "--no-progress"])
    assert result.exit_code == 0 and "1 ungradable" in result.output, result.output
    records = {Path(r["id"]).stem: r for r in json.loads((out / "predictions.json").read_text())["predictions"]}
    reason = "too small: field of view 89 px across, below the 96 px this model needs"
    assert records["small"]["grade"] is None and records["small"]["ungradable_reasons"][0].startswith(reason)
    assert records["large"]["gradable"] is True and records["large"]["grade"] is not None

    with TestClient(create_app(bundle)) as client:
        answers = {name: client.post("/predict", files={"file": (f"{name}.png", (folder / f"{name}.png").read_bytes(),
                                                                 "image/png")}).json() for name in ("small", "large")}
    assert answers["small"]["grade"] is None and answers["small"]["ungradable_reasons"][0].startswith(reason)
    assert answers["large"]["gradable"] is True

    labelled = [Record(name, folder / f"{name}.png", grade=2) for name in ("small", "large")]
    metrics = evaluate(bundle, labelled, tmp_path / "eval", overlays=0, progress=False)
    assert metrics["counts"]["grading"] == 1 and metrics["ungradable"][0]["name"] == "small"
    assert metrics["ungradable"][0]["reason"].startswith(reason)
    assert metrics["skipped"] == ["1 image whose field of view is narrower than the 96 px this model needs (small)"]
    with pytest.raises(DataError, match="nothing to evaluate: 1 image whose field of view is narrower"):
        evaluate(bundle, labelled[:1], tmp_path / "eval_small", overlays=0, progress=False)
    assert not (tmp_path / "eval_small" / "predictions.csv").exists()


def test_the_minimum_field_of_view_is_a_command_line_value(tmp_path: Path) -> None:
    folder = tmp_path / "clinic"
    folder.mkdir()
    Image.fromarray(GOOD).save(folder / "eye.png")  # 241 px across
    bundle = write_tiny_bundle(tmp_path / "model", size=336)  # needs 252 px
    args = ["predict", str(folder), "--checkpoint", str(bundle), "--no-progress"]
    refused = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "a")])
    assert refused.exit_code == 0 and "1 ungradable" in refused.output and "below the 252 px" in refused.output
    allowed = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "b"), "--min-fov-fraction", "0"])
    assert allowed.exit_code == 0 and "0 ungradable" in allowed.output


def test_a_bundle_trained_on_small_photos_carries_its_own_minimum_field_of_view(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from drcollab.evaluation.evaluate import evaluate
    from drcollab.service.app import create_app

    folder = tmp_path / "clinic"
    folder.mkdir()
    Image.fromarray(GOOD).save(folder / "eye.png")  # 241 px across
    bundle = write_tiny_bundle(tmp_path / "model", size=336)  # 0.75 x 336 = 252 px by default
    info = json.loads((bundle / "bundle.json").read_text())
    (bundle / "bundle.json").write_text(json.dumps({**info, "min_fov_fraction": 0.5}))  # 168 px
    args = ["predict", str(folder), "--checkpoint", str(bundle), "--no-progress"]
    own = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "a")])
    assert own.exit_code == 0 and "0 ungradable" in own.output, own.output
    stricter = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "b"), "--min-fov-fraction", "0.75"])
    assert stricter.exit_code == 0 and "below the 252 px" in stricter.output  # the user's value wins
    with TestClient(create_app(bundle)) as client:
        answer = client.post("/predict", files={"file": ("eye.png", (folder / "eye.png").read_bytes(), "image/png")})
    assert answer.json()["gradable"] is True
    metrics = evaluate(bundle, [Record("eye", folder / "eye.png", grade=2)], tmp_path / "eval", overlays=0,
                       progress=False)
    assert metrics["counts"]["grading"] == 1 and metrics["settings"]["min_fov_diameter"] == 168

    (bundle / "bundle.json").write_text(json.dumps({**info, "min_fov_fraction": -1}))
    broken = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "c")])
    assert broken.exit_code == 2 and "min_fov_fraction" in broken.output and "Traceback" not in broken.output
    assert not (tmp_path / "c" / "predictions.csv").exists()
