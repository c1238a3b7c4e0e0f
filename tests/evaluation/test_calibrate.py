"""``drcollab calibrate``: the threshold reaching the target on the labelled set, the copy of the bundle that refers
at it (predict, serve and ``drcollab.load`` follow it), and one clear line for every bad input."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

import drcollab
from drcollab.cli import app
from drcollab.data.io import read_image
from drcollab.data.synthetic import generate_fundus
from drcollab.inference.autotune import choice_path
from drcollab.inference.bundle import bundle_fingerprint, load_bundle
from drcollab.inference.bundle_copy import copy_bundle
from drcollab.inference.predictor import Predictor
from drcollab.service.app import create_app
from helpers import write_tiny_bundle


def run(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def dme_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_bundle(tmp_path_factory.mktemp("calibrate") / "model", dme=True)


def labelled(eval_synth: Path) -> tuple[np.ndarray, np.ndarray]:
    """P(referable) from the source bundle and the truth (DR >= 2 or DME >= 1) of every photo of the set."""
    with (eval_synth / "labels.csv").open() as f:
        rows = list(csv.DictReader(f))
    truth = np.array([int(r["grade"]) >= 2 or int(r["dme"]) >= 1 for r in rows])
    return truth, np.array(rows)


def test_calibrate_writes_a_copy_that_refers_at_the_threshold_reaching_the_target(
        dme_bundle: Path, eval_synth: Path, tmp_path: Path) -> None:
    source_json = (dme_bundle / "bundle.json").read_bytes()
    code, output = run("calibrate", "--checkpoint", dme_bundle, "--data", eval_synth, "--target-sensitivity", "0.5",
                       "--out", tmp_path / "calibrated", "--device", "cpu", "--workers", "0")
    assert code == 0, output
    assert (dme_bundle / "bundle.json").read_bytes() == source_json  # the source is never changed
    truth, rows = labelled(eval_synth)
    predictor = Predictor(dme_bundle)
    probs = np.array([p.referable_probability for p in
                      predictor.predict([read_image(eval_synth / r["path"]) for r in rows])])
    found = [t for t in np.unique(probs) if (probs[truth] >= t).mean() >= 0.5]
    threshold = max(found)  # the largest whose sensitivity reaches 0.5, by brute force
    info = json.loads((tmp_path / "calibrated" / "bundle.json").read_text())
    assert info["referable"]["threshold"] == pytest.approx(threshold, abs=1e-6)
    record = info["calibration"]
    assert record["target"] == {"sensitivity": 0.5} and record["interval"] == "Wilson score, 95%"
    assert (record["positives"], record["negatives"], record["images"]) == (truth.sum(), (~truth).sum(), len(truth))
    sens = record["sensitivity"]
    assert sens["k"] == (probs[truth] >= record["threshold"]).sum() and sens["n"] == truth.sum()
    assert sens["ci95"][0] <= sens["value"] <= sens["ci95"][1] and record["previous_threshold"] == 0.5
    assert record["set"]["format"] == "generic" and record["rule"] == "grade ≥ 2 or DME ≥ 1" and record["date"]
    assert f"threshold {record['threshold']:.4f}" in output and "95% Wilson CI" in output
    assert load_bundle(tmp_path / "calibrated").referable.threshold == record["threshold"]  # weights' hashes hold
    source_choice, copy_choice = (json.loads(choice_path(bundle_fingerprint(load_bundle(b))).read_text())
                                  for b in (dme_bundle, tmp_path / "calibrated"))
    assert copy_choice == source_choice  # on this machine the copy runs in the setting it was calibrated in
    assert sorted(p.name for p in (tmp_path / "calibrated").iterdir()) == [
        "bundle.json", "generator.json", "generator.safetensors", "grader.json", "grader.safetensors"]


def test_predict_serve_and_load_refer_at_the_bundle_threshold(dme_bundle: Path, tmp_path: Path) -> None:
    photo = tmp_path / "in" / "eye.png"
    photo.parent.mkdir()
    Image.fromarray(generate_fundus(4, 96).image).save(photo)
    p = Predictor(dme_bundle).predict([read_image(photo)])[0].referable_probability
    threshold = p / 2 if p < 0.5 else (1 + p) / 2  # on the other side of the photo from 0.5: the flag must turn
    moved = copy_bundle(dme_bundle, tmp_path / "moved", {"referable": {"dr_min": 2, "dme_min": 1,
                                                                        "threshold": threshold}})
    refer = bool(p >= threshold)
    assert drcollab.load(dme_bundle).predict(photo).referable is not refer  # the source refers at 0.5
    assert drcollab.load(moved).predict(photo).referable is refer
    code, output = run("predict", "--checkpoint", moved, photo.parent, "--out", tmp_path / "out", "--no-progress")
    assert code == 0, output
    predictions = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert predictions["referable"]["threshold"] == threshold and predictions["predictions"][0]["referable"] is refer
    with TestClient(create_app(moved, display_side=96)) as client:
        body = client.post("/predict", files={"file": ("eye.png", photo.read_bytes(), "image/png")}).json()
    assert body["referable"] is refer and body["referable_probability"] == pytest.approx(p, abs=1e-4)


def one_error_line(output: str) -> str:
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    return lines[0]


@pytest.mark.parametrize(("targets", "message"), [
    ([], "give one target: --target-sensitivity S or --target-specificity X (got neither)"),
    (["--target-sensitivity", "0.9", "--target-specificity", "0.8"], "(got both)"),
    (["--target-sensitivity", "0"], "--target-sensitivity 0 is outside (0, 1]"),
    (["--target-specificity", "1.5"], "--target-specificity 1.5 is outside (0, 1]"),
])
def test_bad_targets_get_one_line(dme_bundle: Path, eval_synth: Path, tmp_path: Path, targets, message) -> None:
    code, output = run("calibrate", "--checkpoint", dme_bundle, "--data", eval_synth, *targets,
                       "--out", tmp_path / "new")
    assert code == 2 and message in one_error_line(output)
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize(("grade", "dme", "missing"), [(0, 0, "no referable photo"), (3, 0, "no non-referable photo")])
def test_a_set_without_both_classes_is_refused_before_prediction(dme_bundle: Path, eval_synth: Path, tmp_path: Path,
                                                                 grade: int, dme: int, missing: str) -> None:
    one_class = tmp_path / "set"
    shutil.copytree(eval_synth, one_class)
    with (eval_synth / "labels.csv").open() as f:
        paths = [r["path"] for r in csv.DictReader(f)]
    (one_class / "labels.csv").write_text("path,grade,dme\n" + "".join(f"{p},{grade},{dme}\n" for p in paths))
    code, output = run("calibrate", "--checkpoint", dme_bundle, "--data", one_class, "--target-sensitivity", "0.9",
                       "--out", tmp_path / "new")
    line = one_error_line(output)
    assert code == 2 and f"{one_class}: the generic set 'set' has {missing} (grade ≥ 2 or DME ≥ 1)" in line
    assert "calibrate on a set holding both" in line and not (tmp_path / "new").exists()


def test_the_source_or_a_full_folder_is_never_written(dme_bundle: Path, eval_synth: Path, tmp_path: Path) -> None:
    code, output = run("calibrate", "--checkpoint", dme_bundle, "--data", eval_synth, "--target-sensitivity", "0.9",
                       "--out", dme_bundle)
    assert code == 2 and "is the bundle being copied: choose a new folder" in one_error_line(output)
    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_text("keep me")
    code, output = run("calibrate", "--checkpoint", dme_bundle, "--data", eval_synth, "--target-sensitivity", "0.9",
                       "--out", full)
    assert code == 2 and f"{full}: already exists and is not an empty folder" in one_error_line(output)
    assert [p.name for p in full.iterdir()] == ["notes.txt"]


def test_a_copy_whose_weights_do_not_match_their_hash_is_refused(tmp_path: Path) -> None:
    bundle = write_tiny_bundle(tmp_path / "model")
    info = json.loads((bundle / "bundle.json").read_text())
    info["parts"]["grader"]["sha256"] = "0" * 64
    (bundle / "bundle.json").write_text(json.dumps(info))
    with pytest.raises(Exception, match="changed while it was copied"):
        copy_bundle(bundle, tmp_path / "copy", {})
    assert not (tmp_path / "copy").exists() and not list(tmp_path.glob(".copy*"))
