"""DME accuracy and kappa, the joint DR + DME accuracy and the referable scores, against scikit-learn."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, cohen_kappa_score, confusion_matrix, recall_score, roc_auc_score

from drcollab.config import ReferableConfig
from drcollab.evaluation.dme import binary_score, dme_metrics, dme_summary, joint_accuracy
from drcollab.evaluation.evaluate import evaluate
from drcollab.evaluation.intervals import wilson_interval
from drcollab.evaluation.selection import read_eval_set
from helpers import write_tiny_bundle

RNG = np.random.default_rng(0)


def _probs(n: int, k: int) -> np.ndarray:
    p = RNG.random((n, k))
    return p / p.sum(axis=1, keepdims=True)


def test_dme_accuracy_kappa_and_confusion_equal_sklearn() -> None:
    truth, probs = RNG.integers(0, 3, 50), _probs(50, 3)
    predicted = probs.argmax(axis=1)
    m = dme_metrics(truth, probs)
    assert m["accuracy"] == pytest.approx(accuracy_score(truth, predicted))
    assert m["kappa"] == pytest.approx(cohen_kappa_score(truth, predicted, weights="quadratic", labels=range(3)))
    assert m["confusion"] == confusion_matrix(truth, predicted, labels=range(3)).tolist() and m["n"] == 50


def test_joint_accuracy_needs_both_right() -> None:
    # image 0 both right, 1 DR wrong, 2 DME wrong, 3 both right: 2 of 4
    assert joint_accuracy(np.array([0, 1, 2, 4]), np.array([0, 2, 2, 4]), np.array([0, 1, 2, 2]),
                          np.array([0, 1, 1, 2])) == 0.5


def test_sensitivity_specificity_and_auc_equal_sklearn() -> None:
    scores, targets = RNG.random(60), RNG.random(60) < 0.4
    r = binary_score(scores, targets, 0.5)
    assert r.auc == pytest.approx(roc_auc_score(targets, scores))
    assert r.sensitivity == pytest.approx(recall_score(targets, scores >= 0.5))
    assert r.specificity == pytest.approx(recall_score(~targets, scores < 0.5))
    assert (r.n_pos, r.n_neg) == (targets.sum(), (~targets).sum())
    one_class = binary_score(scores, np.ones(60, bool), 0.5)
    assert one_class.auc is None and one_class.specificity is None and one_class.sensitivity is not None


def test_images_without_dme_are_left_out_of_dme_and_joint_and_judged_by_dr_for_referable() -> None:
    dr_true, dr_probs = np.array([0, 0, 3, 1]), _probs(4, 5)
    dme_true, dme_probs = np.array([1, -1, 0, -1]), _probs(4, 3)
    out = dme_summary(dr_true, dr_probs, dme_true, dme_probs, True, ReferableConfig())
    assert out["dme"]["n"] == 2 and out["joint"]["n"] == 2
    assert (out["referable"]["n_pos"], out["referable"]["n_neg"]) == (2, 2)  # DME 1 and DR 3 referable
    p = 1 - dr_probs[:, :2].sum(axis=1) * dme_probs[:, 0]
    assert out["referable"]["auc"] == pytest.approx(roc_auc_score([True, False, True, False], p))
    dr_only = dme_summary(dr_true, dr_probs, dme_true, None, True, ReferableConfig())
    assert dr_only["dme"] is None and dr_only["joint"] is None and dr_only["referable"]["n_pos"] == 1
    messidor = dme_summary(dr_true.clip(max=3), dr_probs, dme_true, dme_probs, False, ReferableConfig())
    assert messidor["dme"]["n"] == 2 and messidor["joint"] is None and messidor["referable"] is None


def test_evaluate_reports_dme_joint_and_referable(eval_synth: Path, tmp_path: Path) -> None:
    bundle = write_tiny_bundle(tmp_path / "model", dme=True)
    metrics = evaluate(bundle, read_eval_set(eval_synth, "auto", "train"), tmp_path / "out", overlays=0,
                       progress=False)
    with (tmp_path / "out" / "predictions.csv").open() as f:
        rows = list(csv.DictReader(f))
    dr, dme = np.array([int(r["grade"]) for r in rows]), np.array([int(r["dme"]) for r in rows])
    dr_pred, dme_pred = np.array([int(r["predicted"]) for r in rows]), np.array([int(r["predicted_dme"]) for r in rows])
    assert metrics["dme"]["accuracy"] == pytest.approx(accuracy_score(dme, dme_pred))
    assert metrics["joint"]["accuracy"] == pytest.approx(np.mean((dr == dr_pred) & (dme == dme_pred)))
    truth, score = (dr >= 2) | (dme >= 1), np.array([float(r["referable_probability"]) for r in rows])
    if truth.all() or not truth.any():
        assert metrics["referable"]["auc"] is None
    else:
        assert metrics["referable"]["auc"] == pytest.approx(roc_auc_score(truth, score))
    assert metrics["referable"]["sensitivity"] == pytest.approx(recall_score(truth, score >= 0.5))
    found, cleared = int((score[truth] >= 0.5).sum()), int((score[~truth] < 0.5).sum())
    assert metrics["referable"]["sensitivity_ci95"] == pytest.approx(wilson_interval(found, truth.sum()))
    assert metrics["referable"]["specificity_ci95"] == pytest.approx(wilson_interval(cleared, (~truth).sum()))
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## DME and referable" in report and "Joint Acc. (DR and DME)" in report
    assert "DR grade >= 2 or DME >= 1" in report and "95% Wilson score intervals" in report
    low, high = metrics["referable"]["sensitivity_ci95"]
    assert f"Sensitivity {found / truth.sum():.3f} (95% CI {low:.3f}-{high:.3f})" in report
    assert metrics["files"]["referral_roc"] == "referral_roc.png" and (tmp_path / "out" / "referral_roc.png").is_file()
    assert "![Referral ROC curve with the operating point](referral_roc.png)" in report


def test_referable_scores_are_the_predictions_own_not_recomputed_from_rounded_probabilities() -> None:
    from drcollab.data.records import Record
    from drcollab.evaluation.scoring import Scores

    scores = Scores()
    for k, (grade, dme, p) in enumerate([(0, 0, 0.4000004), (3, 0, 0.9), (0, 1, 0.7)]):
        scores.add_grade(Record(f"im{k}", Path(f"im{k}.png"), grade=grade, dme=dme), [0.2] * 5, [0.5, 0.3, 0.2], p)
    probs, truth = scores.referable_inputs()
    assert probs.tolist() == [0.4000004, 0.9, 0.7] and truth.tolist() == [False, True, True]
    assert scores.summary()["referable"]["specificity"] == 1.0  # 0.4000004 < 0.5: its own value decides
