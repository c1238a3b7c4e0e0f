"""Wilson intervals against hand-worked values, ROC points against scikit-learn, and the threshold choice on
constructed sets and against a brute-force search."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_curve

from drcollab.evaluation.intervals import proportion, wilson_interval
from drcollab.evaluation.operating_point import choose_threshold, measure, roc_points

POS = [0.9, 0.8, 0.7, 0.6, 0.3]
NEG = [0.65, 0.5, 0.2, 0.1]


def scored(pos: list[float], neg: list[float]) -> tuple[np.ndarray, np.ndarray]:
    return np.array(pos + neg), np.array([True] * len(pos) + [False] * len(neg))


@pytest.mark.parametrize(("k", "n", "low", "high"), [
    (8, 10, 0.49016, 0.94331),  # p 0.8: centre 0.716738, half 0.226576 (z 1.959964, z² 3.841459)
    (0, 10, 0.0, 0.27753),  # upper = z² / (n + z²) = 3.841459 / 13.841459
    (10, 10, 0.72247, 1.0),
    (1, 2, 0.09453, 0.90547),  # p 0.5: centre 0.5, half 1.959964 / 2.920729 * sqrt(0.125 + 0.240091) = 0.405468
])
def test_wilson_interval_equals_hand_worked_values(k: int, n: int, low: float, high: float) -> None:
    assert wilson_interval(k, n) == pytest.approx((low, high), abs=1e-5)


def test_wilson_interval_nears_the_normal_interval_for_many_cases() -> None:
    low, high = wilson_interval(300_000, 1_000_000)
    half = 1.959964 * math.sqrt(0.3 * 0.7 / 1_000_000)
    assert (low, high) == pytest.approx((0.3 - half, 0.3 + half), abs=1e-6)


def test_a_proportion_without_cases_is_refused() -> None:
    with pytest.raises(ValueError, match="n >= 1"):
        wilson_interval(0, 0)
    assert proportion(47, 52).text() == "0.904 (95% Wilson CI 0.794-0.958; 47/52)"


def test_roc_points_equal_sklearn_roc_curve() -> None:
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 30, 200) / 30  # ties
    targets = rng.random(200) < 0.3
    pts = roc_points(scores, targets)
    fpr, tpr, thresholds = roc_curve(targets, scores, drop_intermediate=False)
    np.testing.assert_allclose(pts.fpr, fpr)
    np.testing.assert_allclose(pts.tpr, tpr)
    np.testing.assert_array_equal(pts.thresholds[1:], thresholds[1:])
    assert pts.thresholds[0] > scores.max() and pts.tp[0] == pts.fp[0] == 0


@pytest.mark.parametrize(("target", "value", "threshold", "sens_k", "spec_k"), [
    ("sensitivity", 0.8, 0.6, 4, 3),  # 4 of 5 referable found at 0.6 at the most; 0.65 would find 3
    ("sensitivity", 1.0, 0.3, 5, 2),
    ("sensitivity", 0.5, 0.7, 3, 4),  # 3 of 5 >= 0.5: above 0.65, so every healthy one is below it
    ("specificity", 0.75, 0.6, 4, 3),  # 3 of 4 healthy below the threshold: it must exceed 0.5; 0.6 is the next
    ("specificity", 1.0, 0.7, 3, 4),
])
def test_the_threshold_reaching_a_target_on_a_constructed_set(target, value, threshold, sens_k, spec_k) -> None:
    point = choose_threshold(*scored(POS, NEG), target, value)
    assert point.threshold == threshold
    assert (point.sensitivity.k, point.sensitivity.n, point.specificity.k, point.specificity.n) == (sens_k, 5, spec_k,
                                                                                                    4)
    assert (point.target, point.target_value) == (target, value)


def test_tied_scores_are_flagged_together() -> None:
    point = choose_threshold(*scored([0.6, 0.6, 0.6], [0.6, 0.1]), "sensitivity", 0.5)
    assert point.threshold == 0.6 and point.sensitivity.value == 1.0 and point.specificity.value == 0.5


def test_full_specificity_above_every_score_lies_just_above_the_highest() -> None:
    point = choose_threshold(*scored([0.5], [0.95, 0.2]), "specificity", 1.0)
    assert point.threshold == np.nextafter(0.95, 1.0) and point.sensitivity.k == 0 and point.specificity.k == 2


def test_the_choice_is_the_best_of_a_brute_force_search() -> None:
    rng = np.random.default_rng(2)
    scores, targets = rng.random(120).round(2), rng.random(120) < 0.4
    grid = np.unique(np.concatenate([scores, np.linspace(0.001, 0.999, 999)]))
    for value in (0.5, 0.8, 0.9, 0.95):
        sens = np.array([(scores[targets] >= t).mean() for t in grid])
        spec = np.array([(scores[~targets] < t).mean() for t in grid])
        by_sens = choose_threshold(scores, targets, "sensitivity", value)
        assert by_sens.sensitivity.value >= value
        assert by_sens.specificity.value == spec[sens >= value].max()  # no threshold does better at that target
        by_spec = choose_threshold(scores, targets, "specificity", value)
        assert by_spec.specificity.value >= value and by_spec.sensitivity.value == sens[spec >= value].max()


@pytest.mark.parametrize(("target", "value", "message"), [
    ("sensitivity", 0.0, r"outside \(0, 1\]"), ("specificity", 1.5, r"outside \(0, 1\]"),
    ("accuracy", 0.9, "choose sensitivity or specificity"),
])
def test_bad_targets_are_refused(target: str, value: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        choose_threshold(*scored(POS, NEG), target, value)


def test_a_set_without_one_class_or_a_threshold_of_one_is_refused() -> None:
    with pytest.raises(ValueError, match="0 positive and 4 negative"):
        choose_threshold(*scored([], NEG), "sensitivity", 0.9)
    with pytest.raises(ValueError, match="outside \\(0, 1\\)"):
        choose_threshold(*scored([0.5], [1.0]), "specificity", 1.0)


def test_measure_counts_at_a_given_threshold() -> None:
    point = measure(*scored(POS, NEG), 0.5)
    assert (point.sensitivity.k, point.specificity.k) == (4, 2)  # 0.5 itself is flagged
    assert point.sensitivity.low == pytest.approx(wilson_interval(4, 5)[0]) and point.target is None


@pytest.mark.parametrize("n", range(1, 120))
def test_wilson_interval_holds_its_proportion_at_none_and_all(n: int) -> None:
    """At k = 0 or k = n the interval ends exactly at 0 or 1: rounding once left 1 - 1e-16 at n = 10, and the
    referral ROC's error bar then had a negative length (matplotlib refused to draw it)."""
    assert wilson_interval(n, n)[1] == 1.0 and wilson_interval(0, n)[0] == 0.0
    for k in range(n + 1):
        low, high = wilson_interval(k, n)
        assert low <= k / n <= high
