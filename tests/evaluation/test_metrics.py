"""Pooled pixel ROC / PR accumulators against scikit-learn and hand-worked values."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from drcollab.constants import LESIONS
from drcollab.evaluation.metrics import LesionCurves, StreamingBinaryCurve, UndefinedMetricWarning


def correlated(rng: np.random.Generator, shape: tuple[int, ...], pos_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """float32 probabilities that rank positives higher on average, with bool targets."""
    targets = rng.random(shape) < pos_rate
    logits = rng.normal(size=shape) + 2.0 * targets
    return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32), targets


def assert_matches_sklearn(curve: StreamingBinaryCurve, scores: np.ndarray, targets: np.ndarray) -> None:
    assert curve.roc_auc() == pytest.approx(roc_auc_score(targets, scores), abs=1e-3)
    assert curve.average_precision() == pytest.approx(average_precision_score(targets, scores), abs=1e-3)


def curve_of(scores: np.ndarray, targets: np.ndarray, **kw) -> StreamingBinaryCurve:
    curve = StreamingBinaryCurve(**kw)
    curve.update(scores, targets)
    return curve


@pytest.mark.parametrize(
    ("seed", "shape", "pos_rate"),
    [(0, (1000,), 0.5), (1, (64, 97), 0.1), (2, (3, 128, 128), 0.01), (3, (200_000,), 0.002), (4, (50, 50), 0.9)],
)
def test_random_scores_match_sklearn(seed: int, shape: tuple[int, ...], pos_rate: float) -> None:
    scores, targets = correlated(np.random.default_rng(seed), shape, pos_rate)
    curve = curve_of(scores, targets)
    assert curve.n_pos == targets.sum() and curve.n_neg == (~targets).sum()
    assert_matches_sklearn(curve, scores.ravel(), targets.ravel())


def test_hand_worked_example() -> None:
    # sklearn's docstring example: ROC AUC 0.75; AP = 1/2 * 1/1 + 1/2 * 2/3.
    curve = curve_of(np.array([0.1, 0.4, 0.35, 0.8]), np.array([False, False, True, True]))
    assert curve.roc_auc() == pytest.approx(0.75, abs=1e-12)
    assert curve.average_precision() == pytest.approx(0.5 + 1 / 3, abs=1e-12)


@pytest.mark.parametrize("levels", [2, 5, 10, 16])
def test_many_ties_match_sklearn_exactly(levels: int) -> None:
    rng = np.random.default_rng(levels)
    targets = rng.random(20_000) < 0.2
    scores = np.round(np.clip(rng.normal(0.35 + 0.3 * targets, 0.25), 0, 1) * (levels - 1)) / (levels - 1)
    curve = curve_of(scores, targets)
    # Distinct score levels land in distinct bins, so tied scores form one threshold as in sklearn: exact agreement.
    assert curve.roc_auc() == pytest.approx(roc_auc_score(targets, scores), abs=1e-12)
    assert curve.average_precision() == pytest.approx(average_precision_score(targets, scores), abs=1e-12)
    fpr, tpr, _ = curve.roc_curve()
    ref_fpr, ref_tpr, _ = roc_curve(targets, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, ref_fpr, atol=1e-12)
    np.testing.assert_allclose(tpr, ref_tpr, atol=1e-12)
    precision, recall, thr = curve.pr_curve()
    ref_p, ref_r, ref_thr = precision_recall_curve(targets, scores)
    np.testing.assert_allclose(precision, ref_p, atol=1e-12)
    np.testing.assert_allclose(recall, ref_r, atol=1e-12)
    assert thr.shape == ref_thr.shape and np.all(thr <= ref_thr) and np.all(ref_thr - thr <= 1 / curve.bins)


def test_scores_exactly_zero_and_one() -> None:
    rng = np.random.default_rng(7)
    targets = rng.random(5000) < 0.3
    scores = np.where(rng.random(5000) < 0.5, targets.astype(np.float32), rng.random(5000, dtype=np.float32))
    scores[:10], scores[10:20] = 0.0, 1.0
    curve = curve_of(scores, targets)
    assert curve.pos[0] + curve.neg[0] >= 10 and curve.pos[-1] + curve.neg[-1] >= 10  # 1.0 lands in the last bin
    assert_matches_sklearn(curve, scores, targets)


def test_no_positive_pixel_is_nan_with_warning() -> None:
    scores = np.random.default_rng(0).random((32, 32))
    curve = curve_of(scores, np.zeros((32, 32), bool), name="SE")
    with pytest.warns(UndefinedMetricWarning, match="SE: ROC AUC is undefined: no positive"):
        assert np.isnan(curve.roc_auc())
    with pytest.warns(UndefinedMetricWarning, match="average precision is undefined"):
        assert np.isnan(curve.average_precision())
    with pytest.warns(UndefinedMetricWarning):
        result = curve.result()
    assert not result.defined and result.n_pos == 0 and result.n_neg == 1024
    # For reference: sklearn 1.9 gives NaN ROC AUC but 0.0 AP here; we keep NaN for both (documented).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert average_precision_score(np.zeros(1024, bool), scores.ravel()) == 0.0


def test_no_negative_pixel() -> None:
    curve = curve_of(np.array([0.2, 0.7, 0.7]), np.ones(3, bool))
    with pytest.warns(UndefinedMetricWarning, match="no negative"):
        assert np.isnan(curve.roc_auc())
    assert curve.average_precision() == 1.0
    with pytest.warns(UndefinedMetricWarning):
        result = curve.result()
    assert not result.defined and result.average_precision == 1.0 and result.n_neg == 0


def test_single_positive_pixel() -> None:
    rng = np.random.default_rng(3)
    scores = rng.random((100, 100), dtype=np.float32)
    targets = np.zeros((100, 100), bool)
    targets[40, 60] = True
    curve = curve_of(scores, targets)
    assert curve.n_pos == 1
    assert_matches_sklearn(curve, scores.ravel(), targets.ravel())


def test_validity_mask_ignores_outside_pixels() -> None:
    rng = np.random.default_rng(11)
    scores, targets = correlated(rng, (120, 90), 0.05)
    yy, xx = np.mgrid[:120, :90]
    valid = (yy - 60) ** 2 + (xx - 45) ** 2 < 40**2  # a disc, like the fundus field of view
    scores_outside = scores.copy()
    scores_outside[~valid] = 1.0  # would wreck the metrics if counted
    curve = StreamingBinaryCurve()
    curve.update(scores_outside, targets, valid)
    assert curve.n_pos + curve.n_neg == valid.sum()
    assert_matches_sklearn(curve, scores[valid], targets[valid])


def test_merge_of_halves_equals_one_pass_and_state_round_trip() -> None:
    scores, targets = correlated(np.random.default_rng(5), (4, 64, 64), 0.03)
    whole = curve_of(scores, targets)
    first, second = curve_of(scores[:2], targets[:2]), curve_of(scores[2:], targets[2:])
    merged = first.merge(second)
    np.testing.assert_array_equal(merged.pos, whole.pos)
    np.testing.assert_array_equal(merged.neg, whole.neg)
    assert merged.average_precision() == whole.average_precision() and merged.roc_auc() == whole.roc_auc()
    buf = io.BytesIO()
    np.savez(buf, **whole.state_dict())
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as data:
        restored = StreamingBinaryCurve.from_state(dict(data))
    assert restored.bins == whole.bins and restored.roc_auc() == whole.roc_auc()
    with pytest.raises(ValueError, match="cannot merge curves with 1000 and 65536 bins"):
        whole.merge(StreamingBinaryCurve(bins=1000))


def test_curves_are_monotone_and_bounded() -> None:
    scores, targets = correlated(np.random.default_rng(9), (10_000,), 0.1)
    curve = curve_of(scores, targets, bins=1000)
    fpr, tpr, thr = curve.roc_curve()
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1 and thr[0] == np.inf
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0) and np.all(np.diff(thr) < 0)
    precision, recall, thr = curve.pr_curve()
    assert precision.shape == recall.shape == (thr.size + 1,)
    assert np.all(np.diff(recall) <= 0) and recall[0] == 1 and recall[-1] == 0 and np.all(np.diff(thr) > 0)
    assert np.all((precision >= 0) & (precision <= 1)) and precision[-1] == 1
    assert np.trapezoid(tpr, fpr) == pytest.approx(curve.roc_auc(), abs=1e-12)


@pytest.mark.parametrize(
    ("scores", "targets", "error", "match"),
    [
        (np.array([0.2, 1.5]), np.array([True, False]), ValueError, r"\[0, 1\]; got min 0.2, max 1.5"),
        (np.array([0.2, np.nan]), np.array([True, False]), ValueError, "apply sigmoid first"),
        (np.array([-0.1, 0.3]), np.array([True, False]), ValueError, "min -0.1"),
        (np.array([0.2, 0.3]), np.array([1, 0]), TypeError, "bool array, got dtype int64"),
        (np.array([0.2, 0.3]), np.array([True]), ValueError, r"shape \(2,\) != targets shape \(1,\)"),
    ],
)
def test_bad_input_is_rejected(scores: np.ndarray, targets: np.ndarray, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        StreamingBinaryCurve().update(scores, targets)


def test_lesion_curves_batch_and_missing_lesion() -> None:
    rng = np.random.default_rng(21)
    scores, targets = correlated(rng, (3, len(LESIONS), 40, 50), 0.05)
    targets[:, LESIONS.index("SE")] = False  # no image has an SE mask file: all-negative by convention
    valid = rng.random((3, 40, 50)) < 0.9
    curves = LesionCurves()
    curves.update(scores[:2], targets[:2], valid[:2])
    curves.update(scores[2], targets[2], valid[2])
    with pytest.warns(UndefinedMetricWarning, match="SE: .* is undefined: no positive pixel"):
        results = curves.results()
    assert list(results) == list(LESIONS)
    assert np.isnan(results["SE"].roc_auc) and np.isnan(results["SE"].average_precision) and not results["SE"].defined
    for i, name in enumerate(LESIONS[:3]):
        s, t = scores[:, i][valid], targets[:, i][valid]
        assert_matches_sklearn(curves.curves[name], s, t)
        assert (results[name].roc_auc, results[name].average_precision) == (
            curves.curves[name].roc_auc(), curves.curves[name].average_precision())
    restored = LesionCurves.from_state(curves.state_dict())
    np.testing.assert_array_equal(restored.curves["HE"].pos, curves.curves["HE"].pos)
    assert restored.merge(curves).curves["MA"].n_pos == 2 * curves.curves["MA"].n_pos


def test_lesion_curves_reject_bad_shapes() -> None:
    curves = LesionCurves(bins=100)
    with pytest.raises(ValueError, match="L=4, got shape"):
        curves.update(np.zeros((3, 8, 8)), np.zeros((3, 8, 8), bool))
    with pytest.raises(ValueError, match=r"valid must have shape \(8, 8\)"):
        curves.update(np.zeros((4, 8, 8)), np.zeros((4, 8, 8), bool), np.ones((4, 8, 8), bool))
    with pytest.raises(ValueError, match=r"lacks keys \['SE.pos', 'SE.neg'\]"):
        LesionCurves.from_state({k: v for k, v in curves.state_dict().items() if not k.startswith("SE")})
