"""DME accuracy and kappa (exact labels, and with Messidor-2's partial labels), the referable DME AUC, the joint
DR + DME accuracy and the referable scores, against scikit-learn and hand-worked values."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, cohen_kappa_score, confusion_matrix, recall_score, roc_auc_score

from drcollab.config import ReferableConfig
from drcollab.data.messidor2 import read_messidor2
from drcollab.data.records import Record
from drcollab.evaluation.dme import allowed_risks, binary_score, dme_metrics, dme_summary, joint_accuracy
from drcollab.evaluation.evaluate import evaluate
from drcollab.evaluation.intervals import wilson_interval
from drcollab.evaluation.scoring import Scores
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
    assert metrics["dme"]["accuracy_with_partial"] == metrics["dme"]["accuracy"] and metrics["dme"]["n_partial"] == 0
    normal, p0 = metrics["grading"]["normal"], np.array([float(r["p0"]) for r in rows])
    assert (normal["n_pos"], normal["n_neg"]) == ((dr == 0).sum(), (dr != 0).sum())
    assert normal["accuracy"] == pytest.approx(np.mean((p0 >= 0.5) == (dr == 0)))
    if normal["n_pos"] and normal["n_neg"]:
        assert normal["auc"] == pytest.approx(roc_auc_score(dr == 0, p0))
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
    scores = Scores()
    for k, (grade, dme, p) in enumerate([(0, 0, 0.4000004), (3, 0, 0.9), (0, 1, 0.7)]):
        scores.add_grade(Record(f"im{k}", Path(f"im{k}.png"), grade=grade, dme=dme), [0.2] * 5, [0.5, 0.3, 0.2], p)
    probs, truth = scores.referable_inputs()
    assert probs.tolist() == [0.4000004, 0.9, 0.7] and truth.tolist() == [False, True, True]
    assert scores.summary()["referable"]["specificity"] == 1.0  # 0.4000004 < 0.5: its own value decides


# A hand-made set, Messidor-2's labels beside IDRiD's: (exact risk, partial label, DME probabilities).
#   im0 risk 2, predicted 2: right              im4 "0 or 1", predicted 2: wrong
#   im1 risk 0, predicted 0: right              im5 no DME label: left out
#   im2 risk 1, predicted 0: wrong              im6 risk 2, predicted 2: right
#   im3 "0 or 1", predicted 1: right (allowed)
PARTIAL_SET = [(2, None, [0.1, 0.2, 0.7]), (0, None, [0.6, 0.3, 0.1]), (1, None, [0.5, 0.3, 0.2]),
               (None, (0, 1), [0.2, 0.5, 0.3]), (None, (0, 1), [0.1, 0.1, 0.8]), (None, None, [0.9, 0.05, 0.05]),
               (2, None, [0.3, 0.3, 0.4])]


def _partial_scores() -> Scores:
    scores = Scores()
    for k, (dme, partial, dme_probs) in enumerate(PARTIAL_SET):
        record = Record(f"im{k}", Path(f"im{k}.png"), grade=k % 5, source="messidor2", dme=dme, dme_partial=partial)
        scores.add_grade(record, [0.2] * 5, dme_probs)
    return scores


def test_partial_labels_count_when_the_predicted_risk_is_one_they_allow() -> None:
    dme = _partial_scores().summary()["dme"]
    # exact labels only, as before: im0, im1, im6 right of im0, im1, im2, im6
    assert (dme["accuracy"], dme["n"]) == (0.75, 4)
    exact = [0, 1, 2, 6]
    truth, predicted = [PARTIAL_SET[i][0] for i in exact], [int(np.argmax(PARTIAL_SET[i][2])) for i in exact]
    assert dme["kappa"] == pytest.approx(cohen_kappa_score(truth, predicted, weights="quadratic", labels=range(3)))
    assert dme["confusion"] == confusion_matrix(truth, predicted, labels=range(3)).tolist()
    # with the partial labels: im3 right, im4 wrong: 4 of 6
    assert dme["accuracy_with_partial"] == pytest.approx(4 / 6) and dme["n_partial"] == 2


def test_referable_dme_auc_is_risk_2_against_labels_that_rule_it_out() -> None:
    dme = _partial_scores().summary()["dme"]
    # P(risk 2): risk 2 at 0.7 and 0.4; ruled out (risk 0, risk 1, "0 or 1" twice) at 0.1, 0.2, 0.3, 0.8.
    # 0.7 ranks above three of four, 0.4 above three: 6 of 8 pairs.
    assert dme["referable_dme_auc"] == pytest.approx(0.75)
    target, p2 = [True, False, False, False, False, True], [0.7, 0.1, 0.2, 0.3, 0.8, 0.4]
    assert dme["referable_dme_auc"] == pytest.approx(roc_auc_score(target, p2))
    assert (dme["referable_dme_n_pos"], dme["referable_dme_n_neg"]) == (2, 4)


def test_a_set_of_partial_labels_only_has_a_dme_entry_without_exact_numbers() -> None:
    dme_true, dme_probs = np.array([-1, -1, -1]), np.array([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6], [0.1, 0.8, 0.1]])
    allowed = allowed_risks(dme_true, [(0, 1), (0, 1), None])
    out = dme_summary(np.array([0, 2, 1]), _probs(3, 5), dme_true, dme_probs, True, ReferableConfig(),
                      dme_allowed=allowed)
    assert out["dme"]["accuracy"] is None and out["dme"]["kappa"] is None and out["dme"]["n"] == 0
    assert out["dme"]["accuracy_with_partial"] == pytest.approx(0.5) and out["dme"]["n_partial"] == 2
    assert out["dme"]["referable_dme_auc"] is None and out["dme"]["referable_dme_n_pos"] == 0
    assert out["joint"] is None  # it needs exact risks


def test_allowed_risks_of_exact_partial_and_missing_labels() -> None:
    allowed = allowed_risks(np.array([2, -1, -1, 0]), [None, (0, 1), None, None])
    assert allowed.tolist() == [[False, False, True], [True, True, False], [False, False, False],
                                [True, False, False]]
    with pytest.raises(ValueError, match="both an exact DME risk and a partial label"):
        allowed_risks(np.array([1]), [(0, 1)])


@pytest.mark.parametrize("rule", [ReferableConfig(), ReferableConfig(dme_min=2)])
def test_messidor2_referable_truth_is_dr_2_or_dme_risk_2(tmp_path: Path, rule: ReferableConfig) -> None:
    # id_code, diagnosis (ICDR), adjudicated_dme (1 = referable DME, stored as risk 2; 0 = "risk 0 or 1"), gradable
    rows = ["a.png,0,1,1", "b.png,1,0,1", "c.png,2,0,1", "d.png,0,0,1", "e.png,3,1,1", "f.png,1,,1", "g.png,4,0,1"]
    (tmp_path / "IMAGES").mkdir()
    for row in rows:
        (tmp_path / "IMAGES" / row.split(",")[0]).write_bytes(b"")
    (tmp_path / "messidor_data.csv").write_text(
        "\n".join(["id_code,diagnosis,adjudicated_dme,adjudicated_gradable", *rows]) + "\n")
    records = read_messidor2(tmp_path)
    assert [(r.dme, r.dme_partial) for r in records][:2] == [(2, None), (None, (0, 1))]
    scores = Scores(referable=rule)
    for record in records:
        scores.add_grade(record, [0.2] * 5, [0.4, 0.3, 0.3])
    _, truth = scores.referable_inputs()
    expected = [r.grade >= 2 or r.dme == 2 for r in records]  # a partial "0 or 1" and no label: DR alone
    assert truth.tolist() == expected == [True, False, True, False, True, False, True]
    referable = scores.summary()["referable"]
    assert referable["uses_dme"] and (referable["n_pos"], referable["n_neg"]) == (4, 3)
