"""``drcollab predict`` on folders: per-image outputs at the original size, failures listed, exit codes, re-runs."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from predict_inputs import BAD_FILES, GOOD_SIZES, make_mixed_folder, predict_cli, wide_fundus

from drcollab.constants import DME_GRADES, LESIONS
from drcollab.data.preprocess import Geometry
from drcollab.errors import DataError
from drcollab.inference import outputs
from drcollab.inference.batch import assign_ids, predict_images
from drcollab.inference.engine import load_engine
from drcollab.inference.outputs import fit_side, overlay_image
from helpers import save_turned, write_tiny_bundle

CSV_HEADER = ["id", "path", "width", "height", "gradable", "ungradable_reasons", "grade", "grade_name",
              "p_grade0", "p_grade1", "p_grade2", "p_grade3", "p_grade4", "dme", "dme_name", "p_dme0", "p_dme1",
              "p_dme2", "referable", "referable_probability", "area_MA", "area_HE", "area_EX", "area_SE", "overlay",
              "sha256"]


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    return make_mixed_folder(tmp_path / "in")


def test_mixed_folder_predicts_good_images_and_lists_failures(tiny_bundle: Path, mixed: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = predict_cli(mixed, "--checkpoint", tiny_bundle, "--out", out, "--batch-size", "2")
    assert result.exit_code == 0, result.output
    assert "predicted 3 images" in result.output and "2 failed" in result.output
    for item_id, (h, w) in GOOD_SIZES.items():
        folder = out / "images" / item_id
        for lesion in LESIONS:
            lesion_map = np.asarray(Image.open(folder / f"lesion_{lesion}.png"))
            assert lesion_map.shape == (h, w) and lesion_map.dtype == np.uint8  # original resolution, 8 bit
        assert np.asarray(Image.open(folder / "overlay.png")).shape == (h, w, 3)  # under the size cap
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert [r["id"] for r in rows] == sorted(GOOD_SIZES)
    for row in rows:
        assert (int(row["height"]), int(row["width"])) == GOOD_SIZES[row["id"]]
        probs = [float(row[f"p_grade{g}"]) for g in range(5)]
        assert sum(probs) == pytest.approx(1.0, abs=1e-5) and int(row["grade"]) == int(np.argmax(probs))
        assert row["referable"] == str(sum(probs[2:]) >= 0.5)  # no DME head: DR alone decides
        assert [row["dme"], row["dme_name"], row["p_dme0"], row["p_dme1"], row["p_dme2"]] == [""] * 5
    assert list(rows[0]) == CSV_HEADER
    summary = json.loads((out / "predictions.json").read_text())
    assert summary["referable"] == {"dr_min": 2, "dme_min": 1, "threshold": 0.5, "uses_dme": False}
    failures = {Path(f["path"]).name: f["reason"] for f in summary["failures"]}
    assert set(failures) == BAD_FILES
    assert "truncated" in failures["broken.jpg"] and "header" in failures["notes.jpg"]
    assert [Path(s["path"]).name for s in summary["skipped"]] == ["readme.txt"]
    assert summary["counts"] == {"predicted": 3, "graded": 3, "ungradable": 0, "predicted_now": 3, "reused": 0,
                                 "failed": 2, "skipped": 1}
    assert not list(out.rglob("*.tmp")) and not (out / ".parts").exists()


def test_a_dme_bundle_writes_dme_and_refers_by_dr_or_dme(mixed: Path, tmp_path: Path) -> None:
    bundle = write_tiny_bundle(tmp_path / "model", dme=True)
    out = tmp_path / "out"
    assert predict_cli(mixed, "--checkpoint", bundle, "--out", out).exit_code == 0
    summary = json.loads((out / "predictions.json").read_text())
    assert summary["dme_grades"] == list(DME_GRADES) and summary["referable"]["uses_dme"] is True
    rows = {r["id"]: r for r in csv.DictReader((out / "predictions.csv").open())}
    for record in summary["predictions"]:
        p, q = record["probabilities"], record["dme_probabilities"]
        assert len(q) == 3 and sum(q) == pytest.approx(1.0, abs=1e-5)
        assert record["dme"] == int(np.argmax(q)) and record["dme_name"] == DME_GRADES[record["dme"]]
        expected = 1 - sum(p[:2]) * q[0]  # 1 - P(DR < 2) * P(DME < 1)
        assert record["referable_probability"] == pytest.approx(expected, abs=1e-5)
        assert record["referable"] == (record["referable_probability"] >= 0.5)
        row = rows[record["id"]]
        assert int(row["dme"]) == record["dme"] and [float(row[f"p_dme{d}"]) for d in range(3)] == q
        assert float(row["referable_probability"]) == record["referable_probability"]
        result = json.loads((out / "images" / record["id"] / "result.json").read_text())
        assert result["dme_probabilities"] == q


def test_lesion_maps_are_the_model_probabilities_at_original_pixels(tiny_bundle: Path, tmp_path: Path) -> None:
    folder = tmp_path / "one"
    folder.mkdir()
    image = wide_fundus(5, 72, 104)
    Image.fromarray(image).save(folder / "eye.png")
    out = tmp_path / "out"
    engine = load_engine(tiny_bundle)
    predict_images(engine, [folder], out, progress=False)
    pred = engine.predictor.predict([image])[0]
    expected = pred.pre.geometry.to_original(pred.lesion_probs) * 255  # (L, H, W)
    for k, lesion in enumerate(LESIONS):
        saved = np.asarray(Image.open(out / "images/one/eye.png" / f"lesion_{lesion}.png")).astype(float)
        assert np.abs(saved - expected[k]).max() <= 1 + 1e-3  # levels rounded, then interpolated and rounded again
    record = json.loads((out / "images/one/eye.png/result.json").read_text())
    assert record["probabilities"] == pred.probabilities and record["lesion_area"] == pred.lesion_area


def test_a_photo_stored_sideways_is_predicted_as_displayed(tiny_bundle: Path, tmp_path: Path) -> None:
    folder = tmp_path / "eyes"
    folder.mkdir()
    image = wide_fundus(5, 96, 128)
    Image.fromarray(image).save(folder / "upright.jpg", quality=95)
    save_turned(image, folder / "turned.jpg", quality=95)  # stored 96 wide, 128 high; EXIF turns it upright
    out = tmp_path / "out"
    predict_images(load_engine(tiny_bundle), [folder], out, progress=False)
    records = {r["id"]: r for r in json.loads((out / "predictions.json").read_text())["predictions"]}
    assert (records["eyes/turned.jpg"]["width"], records["eyes/turned.jpg"]["height"]) == (128, 96)
    for lesion in LESIONS:  # the maps line up with the photo as displayed (JPEG noise apart)
        upright, turned = (np.asarray(Image.open(out / "images/eyes" / name / f"lesion_{lesion}.png")).astype(float)
                           for name in ("upright.jpg", "turned.jpg"))
        assert turned.shape == (96, 128) and np.abs(turned - upright).mean() < 2
    assert np.asarray(Image.open(out / "images/eyes/turned.jpg/overlay.png")).shape == (96, 128, 3)


def test_a_16_bit_grey_photo_is_graded_like_its_8_bit_copy(tiny_bundle: Path, tmp_path: Path) -> None:
    folder = tmp_path / "grey"
    folder.mkdir()
    grey = np.asarray(Image.fromarray(wide_fundus(5, 96, 128)).convert("L"))  # (96, 128) uint8
    Image.fromarray(grey).save(folder / "eight.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(folder / "sixteen.png")  # 255 -> 65535
    out = tmp_path / "out"
    predict_images(load_engine(tiny_bundle), [folder], out, progress=False)
    eight, sixteen = sorted(json.loads((out / "predictions.json").read_text())["predictions"], key=lambda r: r["id"])
    assert eight["gradable"] and sixteen["gradable"], sixteen["ungradable_reasons"]  # not "over-exposed"
    assert sixteen["probabilities"] == eight["probabilities"]


def test_rerun_skips_finished_images_and_redoes_incomplete_ones(tiny_bundle: Path, mixed: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert predict_cli(mixed, "--checkpoint", tiny_bundle, "--out", out).exit_code == 0
    results = {i: out / "images" / i / "result.json" for i in GOOD_SIZES}
    stamps = {i: p.stat().st_mtime_ns for i, p in results.items()}
    again = predict_cli(mixed, "--checkpoint", tiny_bundle, "--out", out)
    assert again.exit_code == 0 and "0 now, 3 from an earlier run" in again.output
    assert {i: p.stat().st_mtime_ns for i, p in results.items()} == stamps
    (out / "images/scans/tall.tif/lesion_EX.png").unlink()  # an output lost: that image is predicted again
    third = predict_cli(mixed, "--checkpoint", tiny_bundle, "--out", out)
    assert "1 now, 2 from an earlier run" in third.output
    assert (out / "images/scans/tall.tif/lesion_EX.png").is_file()
    assert len(list(csv.DictReader((out / "predictions.csv").open()))) == 3


def test_a_photo_replaced_under_the_same_name_is_predicted_anew(tiny_bundle: Path, mixed: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert predict_cli(mixed, "--checkpoint", tiny_bundle, "--out", out).exit_code == 0
    kept = {i: (out / "images" / i / "result.json").stat().st_mtime_ns for i in GOOD_SIZES if i != "scans/wide.jpg"}
    Image.fromarray(wide_fundus(7, 100, 140)).save(mixed / "wide.jpg", quality=95)  # re-captured, same name
    again = predict_cli(mixed, "--checkpoint", tiny_bundle, "--out", out)
    assert again.exit_code == 0 and "1 now, 2 from an earlier run" in again.output
    record = json.loads((out / "images/scans/wide.jpg/result.json").read_text())
    assert (record["width"], record["height"]) == (140, 100)
    assert record["sha256"] == hashlib.sha256((mixed / "wide.jpg").read_bytes()).hexdigest()
    assert np.asarray(Image.open(out / "images/scans/wide.jpg/lesion_MA.png")).shape == (100, 140)
    assert {i: (out / "images" / i / "result.json").stat().st_mtime_ns for i in kept} == kept
    rows = {r["id"]: r for r in csv.DictReader((out / "predictions.csv").open())}
    assert (rows["scans/wide.jpg"]["width"], rows["scans/wide.jpg"]["sha256"]) == ("140", record["sha256"])


def test_a_photo_replaced_by_an_ungradable_one_loses_the_old_maps(
    tiny_bundle: Path, mixed: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert predict_cli(mixed, "--checkpoint", tiny_bundle, "--out", out).exit_code == 0
    Image.new("RGB", (128, 96)).save(mixed / "wide.jpg")  # black: no field of view
    assert predict_cli(mixed, "--checkpoint", tiny_bundle, "--out", out).exit_code == 0
    record = json.loads((out / "images/scans/wide.jpg/result.json").read_text())
    assert record["gradable"] is False and record["ungradable_reasons"][0].startswith("no field of view")
    assert not list((out / "images/scans/wide.jpg").glob("*.png"))  # the earlier photo's maps are gone


def test_a_crash_mid_image_leaves_no_result_and_the_rerun_completes_it(
    tiny_bundle: Path, mixed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    real_save, calls = outputs.save_png, []

    def failing_save(array: np.ndarray, path: Path, **kwargs: int) -> Path:
        calls.append(path)
        if len(calls) == 7:  # the first image's 5 files are written, the second crashes after 1
            raise OSError("disk full")
        return real_save(array, path, **kwargs)

    monkeypatch.setattr(outputs, "save_png", failing_save)
    with pytest.raises(DataError, match="disk full"):
        predict_images(load_engine(tiny_bundle), [mixed], out, batch_size=4, progress=False)
    done = sorted(p.parent.relative_to(out / "images").as_posix() for p in out.rglob("result.json"))
    assert done == ["scans/left/small.png"] and not list(out.rglob("*.tmp"))
    monkeypatch.setattr(outputs, "save_png", real_save)
    summary = predict_images(load_engine(tiny_bundle), [mixed], out, progress=False)
    assert (summary.predicted, summary.reused) == (2, 1)


def test_exit_code_1_when_nothing_succeeds(tiny_bundle: Path, tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "notes.jpg").write_text("not an image")
    Image.fromarray(wide_fundus(0, 96, 128)).save(folder / "eye.jpg")
    (folder / "eye.jpg").write_bytes((folder / "eye.jpg").read_bytes()[:300])  # a JPEG cut short
    out = tmp_path / "out"
    result = predict_cli(folder, "--checkpoint", tiny_bundle, "--out", out)
    assert result.exit_code == 1
    assert "no image was predicted" in result.output and "eye.jpg" in result.output
    summary = json.loads((out / "predictions.json").read_text())
    assert summary["counts"]["predicted"] == 0 and len(summary["failures"]) == 2
    assert (out / "predictions.csv").read_text().count("\n") == 1  # the header only


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--checkpoint", "{tmp}/missing"], "not found"),
        (["--checkpoint", "{bundle}", "--engine", "onnx", "--amp"], "onnxruntime's CPU provider"),
        (["--checkpoint", "{bundle}", "--device", "tpu"], "use cpu, cuda"),
        (["--checkpoint", "{bundle}", "--batch-size", "0"], "batch-size"),
    ],
)
def test_exit_code_2_on_usage_or_checkpoint_errors(
    tiny_bundle: Path, mixed: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    args = [a.format(tmp=tmp_path, bundle=tiny_bundle) for a in args]
    result = predict_cli(mixed, *args, "--out", tmp_path / "out")
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "out" / "predictions.json").exists()


def test_ids_come_from_the_path_inside_each_input_and_must_be_unique(tmp_path: Path) -> None:
    a, b = tmp_path / "a" / "scans", tmp_path / "b" / "scans"
    for folder in (a, b):
        folder.mkdir(parents=True)
        (folder / "x.png").touch()
    single = tmp_path / "a" / "y.png"
    single.touch()
    (a / "link.png").symlink_to(single)  # a link keeps the id of where it was found
    items = assign_ids([a, single], [a / "x.png", a / "link.png", single])
    assert [(it.id, it.path) for it in items] == [
        ("scans/link.png", a / "link.png"), ("scans/x.png", a / "x.png"), ("y.png", single)
    ]
    with pytest.raises(DataError, match="same id 'scans/x.png'"):
        assign_ids([a, b], [a / "x.png", b / "x.png"])


def test_overlay_keeps_small_images_and_caps_large_ones() -> None:
    assert fit_side((96, 128), 2048) == (96, 128)
    assert fit_side((3000, 4500), 2048) == (1365, 2048)
    image = np.full((300, 450, 3), 100, np.uint8)
    geometry = Geometry((0, -75, 450, 375), (300, 450), 90, (225.0, 150.0), 225.0)  # the FOV square, 90 px
    probs = np.zeros((len(LESIONS), 90, 90), np.float32)
    probs[0, :45] = 1.0  # MA in the square's top half: the photo's top half (the square starts 75 px above it)
    small = overlay_image(image, probs, geometry, 200)
    assert small.shape == (133, 200, 3)
    assert (small[:60] != 100).any(axis=-1).all() and (small[80:] == 100).all()
