"""``predict --group-pattern eyepacs`` / ``--groups CSV``: patients.csv, patients.json and eyes.csv follow the rules,
and every bad grouping is one line, exit 2, before anything is predicted."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from predict_inputs import predict_cli

from drcollab.data.synthetic import generate_fundus
from drcollab.inference.bundle_copy import copy_bundle
from drcollab.inference.patients import RULES

DECISIONS = {  # threshold -> patient -> decision (10 both eyes good, 13 right eye dark, 15 left eye a broken file)
    1e-6: {"10": "refer", "13": "refer", "15": "refer"},  # every graded photo referable
    0.999999: {"10": "not referable", "13": "cannot grade — re-photograph", "15": "cannot grade — re-photograph"},
}


@pytest.fixture
def exam_folder(tmp_path: Path) -> Path:
    """EyePACS-named photos of three patients: ``train/<patient>_<left|right>.jpeg``."""
    folder = tmp_path / "train"
    folder.mkdir()
    for k, name in enumerate(["10_left", "10_right", "13_left", "15_right"]):
        Image.fromarray(generate_fundus(k, 96).image).save(folder / f"{name}.jpeg", quality=95)
    Image.fromarray((generate_fundus(5, 96).image * 0.1).astype(np.uint8)).save(folder / "13_right.jpeg")  # dark
    (folder / "15_left.jpeg").write_bytes((folder / "10_left.jpeg").read_bytes()[:300])  # cut short
    return folder


def at_threshold(bundle: Path, threshold: float, out: Path) -> Path:
    rule = {"dr_min": 2, "dme_min": 1, "threshold": threshold}
    return copy_bundle(bundle, out, {"referable": rule})


@pytest.mark.parametrize("threshold", sorted(DECISIONS))
def test_eyepacs_names_give_each_patient_its_decision(tiny_bundle: Path, exam_folder: Path, tmp_path: Path,
                                                      threshold: float) -> None:
    bundle = at_threshold(tiny_bundle, threshold, tmp_path / "bundle")
    out = tmp_path / "out"
    result = predict_cli(exam_folder, "--checkpoint", bundle, "--out", out, "--group-pattern", "eyepacs")
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "patients.json").read_text())
    assert {p["patient"]: p["decision"] for p in summary["patients"]} == DECISIONS[threshold]
    assert summary["rules"] == list(RULES) and summary["referable"]["threshold"] == threshold
    assert summary["counts"] == {"patients": 3, "refer": sum(d == "refer" for d in DECISIONS[threshold].values()),
                                 "cannot_grade": sum("cannot" in d for d in DECISIONS[threshold].values()),
                                 "not_referable": sum(d == "not referable" for d in DECISIONS[threshold].values()),
                                 "eyes": 6, "photos": 6, "ungrouped": 0}
    by_id = {r["id"]: r for r in json.loads((out / "predictions.json").read_text())["predictions"]}
    [ten] = [p for p in summary["patients"] if p["patient"] == "10"]
    assert ten["grade"] == max(by_id[f"train/10_{e}.jpeg"]["grade"] for e in ("left", "right"))  # the worst eye
    with (out / "eyes.csv").open() as f:
        eyes = {(r["patient"], r["eye"]): r for r in csv.DictReader(f)}
    assert eyes[("13", "right")]["decision"] == "cannot grade"
    assert eyes[("13", "right")]["why_not_graded"].startswith("train/13_right.jpeg: under-exposed")
    assert eyes[("15", "left")]["why_not_graded"].startswith("train/15_left.jpeg: failed: ")
    with (out / "patients.csv").open() as f:
        patients = {r["patient"]: r for r in csv.DictReader(f)}
    assert patients["13"]["left"] == ("refer" if threshold < 0.5 else "not referable")
    assert patients["13"]["right"] == "cannot grade" and patients["13"]["photos"] == "train/13_left.jpeg; " \
        "train/13_right.jpeg"
    assert "patients: 3 (" in result.output and str(out / "patients.csv") in result.output


def test_a_grouping_csv_names_photos_by_id_or_path(tiny_bundle: Path, exam_folder: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    groups = tmp_path / "groups.csv"
    groups.write_text("Patient,Eye,Photo,site\nanna,L,train/10_left.jpeg,A\nanna,OD,train/10_right.jpeg,A\n"
                      f"ben,left,{exam_folder / '13_left.jpeg'},B\n")
    out = tmp_path / "out"
    result = predict_cli(exam_folder, "--checkpoint", tiny_bundle, "--out", out, "--groups", groups)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "patients.json").read_text())
    assert [(p["patient"], [e["eye"] for e in p["eyes"]]) for p in summary["patients"]] == [
        ("anna", ["left", "right"]), ("ben", ["left"])]
    assert summary["ungrouped"] == ["train/13_right.jpeg", "train/15_left.jpeg", "train/15_right.jpeg"]
    assert summary["grouping"] == str(groups)


@pytest.mark.parametrize(("rows", "message"), [
    ("photo,patient\n10_left.jpeg,1\n", "groups.csv: no column 'eye': a grouping CSV needs the columns photo, "
                                        "patient, eye (it has 'photo', 'patient')"),
    ("photo,patient,eye\ntrain/10_left.jpeg,1,middle\n", "groups.csv: line 2: eye 'middle' is not left or right"),
    ("photo,patient,eye\ntrain/10_left.jpeg,1,left\ntrain/99_left.jpeg,2,left\n",
     "groups.csv: line 3: photo 'train/99_left.jpeg' is not among the 6 images found in the inputs"),
    ("photo,patient,eye\ntrain/10_left.jpeg,1,left\ntrain/10_left.jpeg,2,left\n",
     "groups.csv: line 3: photo 'train/10_left.jpeg' is listed in patient '1' (line 2) and patient '2'"),
    ("photo,patient,eye\ntrain/10_left.jpeg,,left\n", "groups.csv: line 2: empty patient"),
])
def test_a_bad_grouping_csv_is_one_line_before_anything_is_predicted(tiny_bundle: Path, exam_folder: Path,
                                                                    tmp_path: Path, rows: str, message: str) -> None:
    groups = tmp_path / "groups.csv"
    groups.write_text(rows)
    out = tmp_path / "out"
    result = predict_cli(exam_folder, "--checkpoint", tiny_bundle, "--out", out, "--groups", groups)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert not out.exists()


def test_a_name_the_pattern_cannot_read_or_two_groupings_are_refused(tiny_bundle: Path, exam_folder: Path,
                                                                     tmp_path: Path) -> None:
    Image.fromarray(generate_fundus(9, 96).image).save(exam_folder / "scan_0042.jpeg")
    out = tmp_path / "out"
    result = predict_cli(exam_folder, "--checkpoint", tiny_bundle, "--out", out, "--group-pattern", "eyepacs")
    assert result.exit_code == 2 and "scan_0042.jpeg: --group-pattern eyepacs: the file name does not read " \
        "<patient>_<left|right>" in result.output and not out.exists()
    result = predict_cli(exam_folder, "--checkpoint", tiny_bundle, "--out", out, "--group-pattern", "kaggle")
    assert result.exit_code == 2 and "kaggle: unknown --group-pattern: use one of eyepacs" in result.output
    groups = tmp_path / "groups.csv"
    groups.write_text("photo,patient,eye\n")
    result = predict_cli(exam_folder, "--checkpoint", tiny_bundle, "--out", out, "--groups", groups,
                         "--group-pattern", "eyepacs")
    assert result.exit_code == 2 and "--groups and --group-pattern both given" in result.output and not out.exists()
