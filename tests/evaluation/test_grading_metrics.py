"""Grading, Messidor and ICDR normal and referral metrics against scikit-learn and hand-worked values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score, roc_auc_score
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from drcollab.data.records import Record
from drcollab.evaluation.grading_metrics import (
    accuracy,
    binary_roc_auc,
    confusion_matrix,
    grading_metrics,
    icdr_normal,
    icdr_referral,
    messidor_binary,
    messidor_score,
    messidor_target,
    quadratic_weighted_kappa,
)
from drcollab.evaluation.metrics import UndefinedMetricWarning
from drcollab.evaluation.scoring import Scores

GRADES = list(range(5))


def noisy_grades(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """True grades and softmax probabilities that favour grades near the true one."""
    rng = np.random.default_rng(seed)
    y = rng.choice(5, size=n, p=[0.45, 0.1, 0.25, 0.1, 0.1])
    logits = -0.8 * (np.arange(5)[None, :] - y[:, None]) ** 2 + rng.normal(0, 1.5, (n, 5))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, probs


@pytest.mark.parametrize(("seed", "n"), [(0, 20), (1, 103), (2, 1000)])
def test_grading_metrics_match_sklearn(seed: int, n: int) -> None:
    y, probs = noisy_grades(seed, n)
    pred = probs.argmax(axis=1)
    result = grading_metrics(y, probs)  # scores and labels give the same answers
    from_labels = grading_metrics(y, pred)
    assert (from_labels.accuracy, from_labels.kappa) == (result.accuracy, result.kappa)
    assert result.accuracy == accuracy(y, pred) == pytest.approx(np.mean(y == pred))
    np.testing.assert_array_equal(result.confusion, sk_confusion_matrix(y, pred, labels=GRADES))
    assert result.kappa == pytest.approx(cohen_kappa_score(y, pred, weights="quadratic", labels=GRADES), abs=1e-12)
    assert quadratic_weighted_kappa(y, pred) == result.kappa


def test_kappa_hand_worked() -> None:
    # O = {(0,0), (1,2), (2,2)}; sum W*O = 1, sum W*E = 5 (E = outer(row, col sums) / 3)  ->  1 - 1/5.
    assert quadratic_weighted_kappa(np.array([0, 1, 2]), np.array([0, 2, 2])) == pytest.approx(0.8)
    assert quadratic_weighted_kappa(np.array([0, 1, 2, 3, 4]), np.array([0, 1, 2, 3, 4])) == 1.0
    # Fully reversed predictions on a symmetric set: as far from agreement as chance allows.
    assert quadratic_weighted_kappa(np.array([0, 4]), np.array([4, 0])) == pytest.approx(-1.0)


def test_kappa_keeps_absent_grades_on_the_scale() -> None:
    y_true, y_pred = np.array([0, 1, 4]), np.array([0, 4, 4])
    # Grades 2 and 3 never occur: on the 0-4 scale sum W*O = 9 and sum W*E = 67/3, so kappa = 1 - 27/67.
    assert quadratic_weighted_kappa(y_true, y_pred) == pytest.approx(40 / 67)
    assert quadratic_weighted_kappa(y_true, y_pred) == pytest.approx(
        cohen_kappa_score(y_true, y_pred, weights="quadratic", labels=GRADES))
    # sklearn without labels= renumbers {0, 1, 4} as {0, 1, 2} and gets another number.
    assert cohen_kappa_score(y_true, y_pred, weights="quadratic") == pytest.approx(0.8)


def test_kappa_undefined_when_everything_is_one_grade() -> None:
    with pytest.warns(UndefinedMetricWarning, match="one and the same grade"):
        assert np.isnan(quadratic_weighted_kappa(np.array([2, 2, 2]), np.array([2, 2, 2])))
    # One grade in y_true only is fine: chance disagreement is not zero.
    assert quadratic_weighted_kappa(np.array([2, 2, 2]), np.array([2, 2, 1])) == 0.0


def test_confusion_matrix_hand_worked() -> None:
    cm = confusion_matrix(np.array([0, 0, 3, 4]), np.array([0, 1, 3, 2]))
    expected = np.zeros((5, 5), int)
    expected[0, 0] = expected[0, 1] = expected[3, 3] = expected[4, 2] = 1
    np.testing.assert_array_equal(cm, expected)


@pytest.mark.parametrize(
    ("y_true", "y_pred", "match"),
    [
        (np.array([0, 5]), np.array([0, 1]), r"y_true has labels outside 0-4: \[5\]"),
        (np.array([0, 1]), np.array([-1, 1]), r"y_pred has labels outside 0-4: \[-1\]"),
        (np.array([0.0, 1.0]), np.array([0, 1]), "y_true must be integer labels"),
        (np.zeros((2, 5)), np.array([0, 1]), r"y_true must be integer labels \(N,\); got dtype float64"),
        (np.array([0, 1]), np.zeros((2, 4)), r"class scores \(N, 5\)"),
        (np.array([0, 1, 2]), np.array([0, 1]), "y_true has 3 samples but y_pred has 2"),
        (np.array([], int), np.array([], int), "no samples"),
        (np.array([0, 1]), np.array([[0.5, np.nan, 0, 0, 0], [1, 0, 0, 0, 0]]), "NaN or inf"),
    ],
)
def test_bad_grades_are_rejected(y_true: np.ndarray, y_pred: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        accuracy(y_true, y_pred)


@pytest.mark.parametrize("levels", [None, 3, 10])
def test_binary_roc_auc_matches_sklearn_with_ties(levels: int | None) -> None:
    rng = np.random.default_rng(levels or 0)
    targets = rng.random(500) < 0.3
    scores = np.clip(rng.normal(0.4 + 0.2 * targets, 0.2), 0, 1)
    if levels:
        scores = np.round(scores * levels) / levels
    assert binary_roc_auc(scores, targets) == pytest.approx(roc_auc_score(targets, scores), abs=1e-12)


def test_binary_roc_auc_undefined_with_one_class() -> None:
    with pytest.warns(UndefinedMetricWarning, match="0 positive and 3 negative"):
        assert np.isnan(binary_roc_auc(np.array([0.1, 0.2, 0.3]), np.zeros(3, bool)))


def test_messidor_scores_and_targets_hand_worked() -> None:
    probs = np.array([[0.7, 0.1, 0.1, 0.05, 0.05], [0.1, 0.2, 0.3, 0.2, 0.2], [0.0, 0.0, 0.0, 0.0, 1.0]])
    np.testing.assert_allclose(messidor_score(probs, "referral"), [0.2, 0.7, 1.0])
    np.testing.assert_allclose(messidor_score(probs, "normal"), [0.7, 0.1, 0.0])
    grades = np.array([0, 1, 2, 3])
    np.testing.assert_array_equal(messidor_target(grades, "referral"), [False, False, True, True])
    np.testing.assert_array_equal(messidor_target(grades, "normal"), [True, False, False, False])
    # Referral: scores [0.2, 0.7, 1.0] vs targets [F, T, T]: perfect ranking; at 0.5 all three are right.
    result = messidor_binary(probs, np.array([0, 2, 3]), "referral")
    assert (result.auc, result.accuracy, result.n_pos, result.n_neg) == (1.0, 1.0, 2, 1)
    # Normal: scores [0.7, 0.1, 0.0] vs targets [F, T, F] (grades 1, 0, 2): AUC 0.5; at 0.5 only row 3 is right.
    result = messidor_binary(probs, np.array([1, 0, 2]), "normal")
    assert result.auc == pytest.approx(0.5) and result.accuracy == pytest.approx(1 / 3)
    # At 0.05 rows 1 and 2 are called normal: rows 2 and 3 are right.
    assert messidor_binary(probs, np.array([1, 0, 2]), "normal", threshold=0.05).accuracy == pytest.approx(2 / 3)


@pytest.mark.parametrize("task", ["referral", "normal"])
def test_messidor_binary_matches_sklearn(task: str) -> None:
    y, probs = noisy_grades(7, 1200)  # Messidor has 1200 images
    messidor = np.minimum(y, 3)  # a stand-in 4-level grade correlated with the probabilities
    result = messidor_binary(probs, messidor, task, threshold=0.4)
    score = probs[:, 2:].sum(axis=1) if task == "referral" else probs[:, 0]
    target = messidor >= 2 if task == "referral" else messidor == 0
    assert result.auc == pytest.approx(roc_auc_score(target, score), abs=1e-12)
    assert result.accuracy == pytest.approx(np.mean((score >= 0.4) == target))
    assert result.n_pos + result.n_neg == 1200 and result.threshold == 0.4


@pytest.mark.parametrize(
    ("probs", "grades", "task", "match"),
    [
        (np.full((2, 5), 0.2), np.array([0, 4]), "referral", r"messidor_grades has labels outside 0-3: \[4\]"),
        (np.full((2, 5), 0.2), np.array([0, 1]), "severe", "unknown Messidor task 'severe'"),
        (np.full((2, 4), 0.25), np.array([0, 1]), "normal", r"probs must be \(N, 5\)"),
        (np.full((2, 5), 1.0), np.array([0, 1]), "normal", "not logits"),
        (np.full((3, 5), 0.2), np.array([0, 1]), "normal", "probs has 3 rows but messidor_grades has 2"),
    ],
)
def test_messidor_bad_input_is_rejected(probs: np.ndarray, grades: np.ndarray, task: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        messidor_binary(probs, grades, task)


# Five ICDR photos: p0 = [0.8, 0.3, 0.6, 0.1, 0.5], normal (grade 0) = [T, T, F, F, F].
NORMAL_PROBS = np.array([[0.8, 0.1, 0.05, 0.05, 0.0], [0.3, 0.4, 0.2, 0.1, 0.0], [0.6, 0.2, 0.1, 0.1, 0.0],
                         [0.1, 0.1, 0.3, 0.3, 0.2], [0.5, 0.5, 0.0, 0.0, 0.0]])
NORMAL_GRADES = np.array([0, 0, 2, 3, 1])


def test_icdr_normal_hand_worked_and_equal_to_sklearn() -> None:
    result = icdr_normal(NORMAL_PROBS, NORMAL_GRADES)
    # 0.8 ranks above all three others, 0.3 above 0.1 only: 4 of 6 pairs.
    assert result.auc == pytest.approx(4 / 6)
    assert result.auc == pytest.approx(roc_auc_score(NORMAL_GRADES == 0, NORMAL_PROBS[:, 0]), abs=1e-12)
    # Called normal at P(grade 0) >= 0.5: rows 1, 3, 5 (0.5 counts); right are rows 1 and 4.
    assert result.accuracy == pytest.approx(2 / 5)
    assert (result.n_pos, result.n_neg, result.threshold) == (2, 3, 0.5)


def test_icdr_normal_matches_sklearn_on_many_photos() -> None:
    y, probs = noisy_grades(11, 800)
    result = icdr_normal(probs, y, threshold=0.3)
    assert result.auc == pytest.approx(roc_auc_score(y == 0, probs[:, 0]), abs=1e-12)
    assert result.accuracy == pytest.approx(np.mean((probs[:, 0] >= 0.3) == (y == 0)))
    assert (result.n_pos, result.n_neg) == ((y == 0).sum(), (y != 0).sum())


def test_icdr_normal_rejects_grades_off_the_scale() -> None:
    with pytest.raises(ValueError, match=r"grades has labels outside 0-4: \[5\]"):
        icdr_normal(np.full((2, 5), 0.2), np.array([0, 5]))
    with pytest.raises(ValueError, match="probs has 2 rows but grades has 3"):
        icdr_normal(np.full((2, 5), 0.2), np.array([0, 1, 2]))


def test_icdr_grading_entry_reports_normal_beside_accuracy_and_kappa() -> None:
    scores = Scores()
    for k, (grade, probs) in enumerate(zip(NORMAL_GRADES, NORMAL_PROBS, strict=True)):
        scores.add_grade(Record(f"im{k}", Path(f"im{k}.png"), grade=int(grade), source="messidor2"), probs.tolist())
    normal = scores.summary()["grading"]["normal"]
    assert normal == {"auc": pytest.approx(4 / 6), "accuracy": pytest.approx(0.4), "threshold": 0.5, "n_pos": 2,
                      "n_neg": 3, "sensitivity": pytest.approx(0.5), "specificity": pytest.approx(1 / 3)}
    one_class = Scores()
    one_class.add_grade(Record("a", Path("a.png"), grade=2), NORMAL_PROBS[0].tolist())
    assert one_class.grading()["normal"]["auc"] is None and one_class.grading()["normal"]["n_pos"] == 0


def test_icdr_referral_counts_referable_dme_and_scores_both_heads_against_sklearn() -> None:
    rng = np.random.default_rng(3)
    grades = rng.integers(0, 5, 60)
    probs = rng.dirichlet(np.ones(5), 60)
    dme_true = rng.choice([-1, 0, 2], 60)  # unknown or partial, no DME, referable DME (Messidor-2's two labels)
    dme_probs = rng.dirichlet(np.ones(3), 60)
    truth = (grades >= 2) | (dme_true == 2)
    with_dme = icdr_referral(probs, grades, dme_probs, dme_true)
    score = 1 - probs[:, :2].sum(axis=1) * dme_probs[:, :2].sum(axis=1)  # P(DR >= 2 or DME 2), the two independent
    assert with_dme.auc == pytest.approx(roc_auc_score(truth, score), abs=1e-12)
    assert with_dme.accuracy == pytest.approx(np.mean((score >= 0.5) == truth))
    assert with_dme.sensitivity == pytest.approx(np.mean(score[truth] >= 0.5))
    assert with_dme.specificity == pytest.approx(np.mean(score[~truth] < 0.5))
    assert (with_dme.n_pos, with_dme.n_neg) == (truth.sum(), (~truth).sum())
    dr_only = icdr_referral(probs, grades, None, dme_true)  # no DME head: P(DR >= 2), the same truth
    assert dr_only.auc == pytest.approx(roc_auc_score(truth, probs[:, 2:].sum(axis=1)), abs=1e-12)
    assert icdr_referral(probs, grades).n_pos == (grades >= 2).sum()  # no DME labels: DR alone


def test_icdr_grading_entry_has_the_referral_with_the_dme_label() -> None:
    scores = Scores()
    p_low = [0.6, 0.4, 0.0, 0.0, 0.0]  # P(DR >= 2) = 0
    scores.add_grade(Record("a", Path("a.png"), grade=1, dme=2, source="messidor2"), p_low, [0.2, 0.2, 0.6])
    scores.add_grade(Record("b", Path("b.png"), grade=0, dme_partial=(0, 1), source="messidor2"), p_low,
                     [0.9, 0.1, 0.0])
    scores.add_grade(Record("c", Path("c.png"), grade=3, dme_partial=(0, 1), source="messidor2"),
                     [0.1, 0.1, 0.2, 0.3, 0.3], [0.9, 0.1, 0.0])
    referral = scores.summary()["grading"]["referral"]
    assert (referral["n_pos"], referral["n_neg"]) == (2, 1)  # grade 1 with referable DME is referred
    assert referral["accuracy"] == pytest.approx(1.0) and referral["auc"] == pytest.approx(1.0)
