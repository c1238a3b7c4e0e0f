"""evaluate() on tiny synthetic sets: files, keys, and numbers equal to scikit-learn on the full-resolution maps."""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import accuracy_score, average_precision_score, cohen_kappa_score, roc_auc_score

from drcollab.constants import LESIONS
from drcollab.data.io import load_sample
from drcollab.data.records import Record
from drcollab.errors import DataError
from drcollab.evaluation.compare import load_curves
from drcollab.evaluation.evaluate import evaluate
from drcollab.evaluation.selection import read_eval_set
from drcollab.inference.predictor import Predictor


@pytest.fixture(scope="module")
def evaluated(eval_bundle: Path, eval_synth: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("eval")
    metrics = evaluate(eval_bundle, read_eval_set(eval_synth, "auto", "train"), out, overlays=2, bins=2**20,
                       progress=False)  # fine bins: the tiny model's scores crowd around 0.5
    return out, metrics


def full_resolution_maps(bundle: Path, records: list[Record]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pooled (L, N) scores and targets at the original resolution, and (N_images, 5) grade probabilities."""
    predictor = Predictor(bundle)
    scores, targets, probs = [], [], []
    for record in records:
        sample = load_sample(record)
        pred = predictor.predict([sample.image])[0]
        scores.append(pred.pre.geometry.to_original(pred.lesion_probs).reshape(len(LESIONS), -1))
        targets.append(sample.masks.reshape(len(LESIONS), -1))
        probs.append(pred.probabilities)
    return np.concatenate(scores, axis=1), np.concatenate(targets, axis=1), np.asarray(probs)


def test_writes_the_report_files_with_the_expected_keys(evaluated: tuple[Path, dict]) -> None:
    out, metrics = evaluated
    for name in ("metrics.json", "report.md", "predictions.csv", "curves.npz", "curves.png", "confusion.png"):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in (out / "overlays").iterdir()) == ["synth_00000.png", "synth_00001.png"]
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(metrics))
    for key in ("drcollab_version", "checkpoint", "data", "description", "settings", "counts", "segmentation",
                "grading", "messidor", "files"):
        assert key in on_disk, key
    assert on_disk["data"]["split"] == "train" and on_disk["data"]["fold"] is None
    assert on_disk["settings"]["tta"] == "none"
    assert on_disk["counts"] == {"images": 6, "segmentation": 6, "grading": 6,
                                 "lesion_images": on_disk["counts"]["lesion_images"]}
    assert set(on_disk["segmentation"]) == set(LESIONS)
    assert on_disk["messidor"] is None
    assert on_disk["dme"] is None and on_disk["joint"] is None  # the bundle has no DME head
    assert on_disk["referable"]["uses_dme"] is False and on_disk["referable"]["rule"]["dr_min"] == 2
    for png in [out / "curves.png", out / "confusion.png", *(out / "overlays").iterdir()]:
        assert png.stat().st_size < 500_000, png
        assert Image.open(png).format == "PNG"


def test_numbers_equal_sklearn_on_the_full_resolution_maps(eval_bundle: Path, eval_synth: Path,
                                                           evaluated: tuple[Path, dict]) -> None:
    _, metrics = evaluated
    records = read_eval_set(eval_synth, "generic").segmentation
    scores, targets, probs = full_resolution_maps(eval_bundle, records)
    for i, lesion in enumerate(LESIONS):
        m = metrics["segmentation"][lesion]
        assert m["n_pos"] == targets[i].sum() and m["n_pos"] + m["n_neg"] == targets[i].size
        if targets[i].any():
            assert m["auc_roc"] == pytest.approx(roc_auc_score(targets[i], scores[i]), abs=1e-4)
            assert m["auc_pr"] == pytest.approx(average_precision_score(targets[i], scores[i]), abs=1e-4)
        else:
            assert m["auc_roc"] is None and m["auc_pr"] is None
    truth = [r.grade for r in records]
    predicted = probs.argmax(axis=1)
    assert metrics["grading"]["accuracy"] == pytest.approx(accuracy_score(truth, predicted))
    kappa = cohen_kappa_score(truth, predicted, weights="quadratic", labels=range(5))
    assert metrics["grading"]["kappa"] == pytest.approx(kappa, abs=1e-12)
    assert np.sum(metrics["grading"]["confusion"]) == len(records)


def test_saved_histograms_and_predictions_match_the_metrics(evaluated: tuple[Path, dict]) -> None:
    out, metrics = evaluated
    curves = load_curves(out)
    for lesion, result in curves.results().items():
        assert result.n_pos == metrics["segmentation"][lesion]["n_pos"]
        if result.defined:
            assert result.average_precision == pytest.approx(metrics["segmentation"][lesion]["auc_pr"], abs=1e-12)
    with (out / "predictions.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["tasks"] for r in rows] == ["segmentation+grading"] * 6
    assert all(abs(sum(float(r[f"p{g}"]) for g in range(5)) - 1) < 1e-4 for r in rows)


def test_report_puts_our_labelled_row_beside_the_paper_rows(evaluated: tuple[Path, dict]) -> None:
    report = (evaluated[0] / "report.md").read_text()
    for text in ("Table 3", "CE2+Semi+Adv", "VRT", "PATech", "iFLYTEK-MIG", "AdvSeg", "ASDNet", "0.4951 (2)",
                 "Table 1", "Lesion(Semi+Adv)", "**tiny**", "the generic set 'set'", "![ROC and PR curves"):
        assert text in report, text
    assert "test split" not in report.split("## Lesion")[0]  # our row is never called a test set
    assert "Table 2" not in report  # no Messidor data


def test_pixels_outside_the_crop_box_score_zero_and_the_whole_image_counts(eval_bundle: Path, eval_synth: Path,
                                                                           tmp_path: Path) -> None:
    record = read_eval_set(eval_synth, "generic").segmentation[0]
    sample = load_sample(record)
    pad = ((0, 0), (40, 40))  # black bars left and right, outside the FOV's crop box
    image = np.stack([np.pad(sample.image[..., c], pad) for c in range(3)], axis=-1)
    Image.fromarray(image).save(tmp_path / "wide.png")
    mask = np.pad(sample.masks[0], pad)
    mask[10:12, 5:8] = True  # 6 lesion pixels on the black bar
    Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "wide_MA.png")
    wide = Record("wide", tmp_path / "wide.png", (tmp_path / "wide_MA.png", None, None, None), grade=2)
    # G's raw maps inside the box (outside_fov keep), so that only the crop box decides which pixels score 0
    metrics = evaluate(eval_bundle, [wide], tmp_path / "out", overlays=0, progress=False, outside_fov="keep")
    x0, y0, x1, y1 = Predictor(eval_bundle).preprocess(image).geometry.box
    h, w = mask.shape
    # bilinear mapping blends a one-pixel seam around the box; every pixel beyond it scores exactly 0
    seam = (min(x1 + 1, w) - max(x0 - 1, 0)) * (min(y1 + 1, h) - max(y0 - 1, 0))
    state = load_curves(tmp_path / "out").curves["MA"]
    assert metrics["segmentation"]["MA"]["n_pos"] + metrics["segmentation"]["MA"]["n_neg"] == mask.size
    assert state.pos[0] == 6  # score 0 lands in the lowest bin; the model's own scores never get that low
    assert state.neg[0] == h * w - seam - 6


def test_messidor_grades_give_referral_and_normal_aucs(eval_bundle: Path, eval_synth: Path, tmp_path: Path) -> None:
    records = read_eval_set(eval_synth, "generic").grading[:4]
    grades = np.array([0, 2, 3, 1])  # Messidor's 0-3 scale
    messidor = [Record(r.name, r.image_path, None, int(g), "messidor", "messidor")
                for r, g in zip(records, grades, strict=True)]
    metrics = evaluate(eval_bundle, messidor, tmp_path, overlays=0, progress=False)
    assert metrics["grading"] is None and metrics["segmentation"] is None
    with (tmp_path / "predictions.csv").open() as f:  # the model's probabilities, as evaluate saw them
        probs = np.array([[float(row[f"p{g}"]) for g in range(5)] for row in csv.DictReader(f)])
    assert metrics["messidor"]["referral"]["auc"] == pytest.approx(roc_auc_score(grades >= 2, probs[:, 2:].sum(1)))
    assert metrics["messidor"]["normal"]["auc"] == pytest.approx(roc_auc_score(grades == 0, probs[:, 0]))
    assert np.asarray(metrics["messidor"]["confusion"]).shape == (4, 5)
    report = (tmp_path / "report.md").read_text()
    for text in ("Table 2", "Lesion(Semi+Adv)", "Table 4", "Zoom-in [46]", "Expert [37]", "**tiny**"):
        assert text in report, text


def test_a_missing_checkpoint_or_mask_names_the_file(eval_bundle: Path, eval_synth: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nowhere"):
        evaluate(tmp_path / "nowhere", read_eval_set(eval_synth, "generic"), tmp_path / "out", progress=False)
    record = read_eval_set(eval_synth, "generic").segmentation[0]
    broken = Record(record.name, record.image_path, (tmp_path / "gone_MA.png", None, None, None))
    with pytest.raises(DataError, match="gone_MA.png"):
        evaluate(eval_bundle, [broken], tmp_path / "out", overlays=0, progress=False)


def test_tasks_the_bundle_cannot_do_are_reported_as_skipped(eval_bundle: Path, eval_synth: Path,
                                                            tmp_path: Path) -> None:
    shutil.copytree(eval_bundle, tmp_path / "model")
    info = json.loads((tmp_path / "model" / "bundle.json").read_text())
    del info["parts"]["grader"]  # a segmentation-only bundle (CE1 / CE2 runs)
    (tmp_path / "model" / "bundle.json").write_text(json.dumps(info))
    records = read_eval_set(eval_synth, "generic").segmentation[:2]
    metrics = evaluate(tmp_path / "model", records, tmp_path / "out", overlays=0, progress=False)
    assert metrics["grading"] is None and metrics["segmentation"] is not None
    assert metrics["skipped"] == ["grading of 2 images: the bundle has no grader"]
    assert not (tmp_path / "out" / "confusion.png").exists()
    assert "Not evaluated:** grading of 2 images" in (tmp_path / "out" / "report.md").read_text()
    graded_only = [replace(r, mask_paths=None) for r in records]
    with pytest.raises(DataError, match="nothing to evaluate.*no grader"):
        evaluate(tmp_path / "model", graded_only, tmp_path / "out2", progress=False)
