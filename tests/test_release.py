"""The release checkpoint in release/: it loads, and it grades and maps a real IDRiD image."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from drcollab.cli import app
from drcollab.constants import LESIONS
from drcollab.data.io import read_image
from drcollab.inference.predictor import Predictor

RELEASE = Path(__file__).resolve().parents[1] / "release/drcollab-idrid-cpu"
IMAGE = "A. Segmentation/1. Original Images/a. Training Set/IDRiD_01.jpg"


def test_release_is_small_and_complete():
    size = sum(p.stat().st_size for p in RELEASE.iterdir())
    assert size < 50 * 2**20
    for name in ("bundle.json", "generator.safetensors", "grader.safetensors", "config.yaml", "metrics.json"):
        assert (RELEASE / name).is_file(), name
    metrics = json.loads((RELEASE / "metrics.json").read_text())
    assert metrics["description"].startswith("validation fold")
    assert {"dme", "joint", "referable"} <= metrics.keys() and metrics["referable"]["uses_dme"]
    grader = json.loads((RELEASE / "grader.json").read_text())["config"]
    assert grader["dme"] and grader["lesion_stats"]  # the grader the README describes


def test_release_predicts_a_real_idrid_image(idrid_root):
    image = read_image(idrid_root / IMAGE)
    pred = Predictor(RELEASE).predict([image])[0]
    assert pred.grade in range(5) and abs(sum(pred.probabilities) - 1) < 1e-4
    assert pred.dme in range(3) and abs(sum(pred.dme_probabilities) - 1) < 1e-4  # the release grades DME too
    assert isinstance(pred.referable, bool) and 0 <= pred.referable_probability <= 1
    maps = pred.pre.geometry.to_original(pred.lesion_probs)  # (L, H, W) at 4288x2848
    assert maps.shape == (len(LESIONS), *image.shape[:2])
    assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1
    assert set(pred.lesion_area) == set(LESIONS)


def test_predict_command_loads_the_release(idrid_root, tmp_path):
    result = CliRunner().invoke(app, ["predict", "--checkpoint", str(RELEASE), str(idrid_root / IMAGE),
                                      "--out", str(tmp_path), "--no-progress"])
    assert result.exit_code == 0, result.output
    rows = (tmp_path / "predictions.csv").read_text().splitlines()
    assert len(rows) == 2 and "IDRiD_01" in rows[1]


def test_release_refers_at_the_threshold_its_calibration_chose():
    from drcollab.evaluation.intervals import wilson_interval
    from drcollab.inference.bundle import load_bundle

    bundle = load_bundle(RELEASE)  # the weights' hashes still hold
    record = bundle.info["calibration"]
    assert bundle.referable.threshold == record["threshold"] and record["previous_threshold"] == 0.5
    assert record["target"] == {"sensitivity": 0.9} and record["interval"] == "Wilson score, 95%"
    assert record["set"]["description"] == "validation fold 0 of 5 of the IDRiD training split"
    assert (record["images"], record["positives"], record["negatives"]) == (83, 52, 31) and not record["left_out"]
    for share in (record["sensitivity"], record["specificity"]):
        assert share["value"] == share["k"] / share["n"]
        assert share["ci95"] == list(wilson_interval(share["k"], share["n"]))
    assert record["sensitivity"]["value"] >= 0.9
