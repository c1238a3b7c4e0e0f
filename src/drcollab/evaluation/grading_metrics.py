"""Image-level DR grading metrics: accuracy, quadratic weighted kappa, confusion matrix, Messidor binary tasks.

Grades use the 5-level international clinical DR scale (ICDR, 0-4, :data:`drcollab.constants.GRADES`). Predictions
may be given as labels ``(N,)`` or as class scores ``(N, 5)`` (probabilities or logits; the arg-max is the label).

Messidor grades retinopathy on 4 levels (0-3). Following the paper (Sec. 4.1) and Zoom-in-Net's protocol, its two
binary tasks are read from the 5-class probabilities as:

* referral: Messidor grade >= 2 is referable. Messidor 0 ~ ICDR 0, 1 ~ ICDR 1 (mild), 2-3 ~ ICDR 2-4, so the
  referable score is P(ICDR >= 2) = p2 + p3 + p4.
* normal: Messidor grade 0 is normal (every other grade is abnormal DR); the score is P(ICDR = 0) = p0 and the
  positive class is "normal". (AUC is the same as scoring abnormal by 1 - p0.)

On the ICDR scale itself (IDRiD, Messidor-2, EyePACS) the normal task is DR 0 against the rest, scored by the same
P(ICDR = 0) (:func:`icdr_normal`), and the referral task is DR >= 2 or referable DME (:func:`icdr_referral`: an exact
DME label of risk 2, which is what Messidor-2's adjudicated DME means), so a Messidor-2 evaluation has Table 2's
referral and normal AUC and accuracy too, whatever referable rule the model's flags follow.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np

from drcollab.config import ReferableConfig
from drcollab.constants import NUM_GRADES, REFERABLE_FROM_GRADE
from drcollab.evaluation.metrics import UndefinedMetricWarning
from drcollab.inference.referable import is_referable, referable_probability

MessidorTask = Literal["referral", "normal"]
MESSIDOR_GRADES = 4


def _labels(y: np.ndarray, name: str, num_classes: int, allow_scores: bool) -> np.ndarray:
    """Integer labels (N,) in [0, num_classes); class scores (N, num_classes) become their arg-max if allowed."""
    y = np.asarray(y)
    if allow_scores and y.ndim == 2 and y.shape[1] == num_classes:
        if not np.isfinite(y).all():
            raise ValueError(f"{name}: class scores contain NaN or inf")
        return y.argmax(axis=1)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        wanted = f"integer labels (N,) or class scores (N, {num_classes})" if allow_scores else "integer labels (N,)"
        raise ValueError(f"{name} must be {wanted}; got dtype {y.dtype}, shape {y.shape}")
    bad = y[(y < 0) | (y >= num_classes)]
    if bad.size:
        raise ValueError(f"{name} has labels outside 0-{num_classes - 1}: {np.unique(bad)[:5].tolist()}")
    return y


def _pair(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = _labels(y_true, "y_true", NUM_GRADES, allow_scores=False)
    p = _labels(y_pred, "y_pred", NUM_GRADES, allow_scores=True)
    if t.size != p.size:
        raise ValueError(f"y_true has {t.size} samples but y_pred has {p.size}")
    if t.size == 0:
        raise ValueError("no samples to score")
    return t, p


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """(5, 5) int64 counts, rows true grade, columns predicted grade (sklearn's layout, all 5 grades always)."""
    t, p = _pair(y_true, y_pred)
    return np.bincount(t * NUM_GRADES + p, minlength=NUM_GRADES**2).reshape(NUM_GRADES, NUM_GRADES)


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    t, p = _pair(y_true, y_pred)
    return float(np.mean(t == p))


def quadratic_weighted_kappa(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Cohen's kappa with weights (i - j)**2 over the fixed label set 0-4.

    Grades absent from both inputs still keep their place on the scale (sklearn's ``cohen_kappa_score`` needs
    ``labels=range(5)`` for the same number). NaN with a warning when chance disagreement is zero, i.e. both
    inputs put every sample in one and the same grade.
    """
    return kappa_from_confusion(confusion_matrix(y_true, y_pred))


def kappa_from_confusion(confusion: np.ndarray) -> float:
    """Quadratic weighted kappa of a ``(K, K)`` confusion matrix (rows true, columns predicted); NaN with a warning
    when chance disagreement is zero."""
    observed = np.asarray(confusion, dtype=np.float64)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / observed.sum()
    classes = np.arange(len(observed))
    weights = (classes[:, None] - classes[None, :]) ** 2
    chance = float((weights * expected).sum())
    if chance == 0.0:
        warnings.warn("quadratic weighted kappa is undefined: y_true and y_pred hold one and the same grade only",
                      UndefinedMetricWarning, stacklevel=3)
        return float("nan")
    return 1.0 - float((weights * observed).sum()) / chance


@dataclass(frozen=True)
class GradingResult:
    accuracy: float
    kappa: float
    confusion: np.ndarray  # (5, 5) rows true, columns predicted


def grading_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> GradingResult:
    """Accuracy, quadratic weighted kappa and confusion matrix in one call."""
    return GradingResult(accuracy(y_true, y_pred), quadratic_weighted_kappa(y_true, y_pred),
                         confusion_matrix(y_true, y_pred))


def binary_roc_auc(scores: np.ndarray, targets: np.ndarray) -> float:
    """Exact ROC AUC (Mann-Whitney, tied scores count half); NaN with a warning when a class is absent."""
    scores, targets = np.asarray(scores, dtype=np.float64).ravel(), np.asarray(targets, dtype=bool).ravel()
    if scores.size != targets.size:
        raise ValueError(f"scores has {scores.size} values but targets has {targets.size}")
    n_pos = int(targets.sum())
    n_neg = targets.size - n_pos
    if n_pos == 0 or n_neg == 0:
        warnings.warn(f"ROC AUC is undefined with {n_pos} positive and {n_neg} negative samples; returning NaN",
                      UndefinedMetricWarning, stacklevel=2)
        return float("nan")
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    midranks = np.cumsum(counts) - (counts - 1) / 2.0  # 1-based average rank of each distinct score
    rank_sum = midranks[inverse][targets].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def messidor_score(probs: np.ndarray, task: MessidorTask) -> np.ndarray:
    """(N,) score of the positive class from (N, 5) ICDR probabilities: P(ICDR >= 2) or P(ICDR = 0)."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != NUM_GRADES:
        raise ValueError(f"probs must be (N, {NUM_GRADES}) ICDR grade probabilities, got shape {probs.shape}")
    if not np.isfinite(probs).all() or (probs < 0).any() or not np.allclose(probs.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError("probs must be softmax probabilities (non-negative, rows summing to 1), not logits")
    if task == "referral":
        return probs[:, REFERABLE_FROM_GRADE:].sum(axis=1)
    if task == "normal":
        return probs[:, 0]
    raise ValueError(f"unknown Messidor task {task!r}; expected 'referral' or 'normal'")


def messidor_target(messidor_grades: np.ndarray, task: MessidorTask) -> np.ndarray:
    """(N,) bool positive class from Messidor grades 0-3: grade >= 2 (referral) or grade == 0 (normal)."""
    grades = _labels(messidor_grades, "messidor_grades", MESSIDOR_GRADES, allow_scores=False)
    if task == "referral":
        return grades >= 2
    if task == "normal":
        return grades == 0
    raise ValueError(f"unknown Messidor task {task!r}; expected 'referral' or 'normal'")


@dataclass(frozen=True)
class BinaryResult:
    auc: float
    accuracy: float  # at the threshold: positive when score >= threshold
    threshold: float
    n_pos: int
    n_neg: int
    sensitivity: float | None = None  # at the threshold; None without a positive image
    specificity: float | None = None  # at the threshold; None without a negative image


def binary_task(score: np.ndarray, target: np.ndarray, threshold: float = 0.5,
                labels: str = "labels") -> BinaryResult:
    """ROC AUC of ``(N,)`` scores against ``(N,)`` bool targets, and the accuracy of ``score >= threshold``."""
    if score.size != target.size:
        raise ValueError(f"probs has {score.size} rows but {labels} has {target.size} labels")
    if score.size == 0:
        raise ValueError("no samples to score")
    target = np.asarray(target, dtype=bool)
    flagged = score >= threshold
    acc = float(np.mean(flagged == target))
    n_pos = int(target.sum())
    n_neg = target.size - n_pos
    sens = float(flagged[target].mean()) if n_pos else None
    spec = float((~flagged[~target]).mean()) if n_neg else None
    return BinaryResult(binary_roc_auc(score, target), acc, threshold, n_pos, n_neg, sens, spec)


def messidor_binary(probs: np.ndarray, messidor_grades: np.ndarray, task: MessidorTask,
                    threshold: float = 0.5) -> BinaryResult:
    """ROC AUC and thresholded accuracy of one Messidor binary task from (N, 5) ICDR probabilities."""
    return binary_task(messidor_score(probs, task), messidor_target(messidor_grades, task), threshold,
                       "messidor_grades")


def icdr_normal(probs: np.ndarray, grades: np.ndarray, threshold: float = 0.5) -> BinaryResult:
    """Normal (ICDR grade 0) against any DR: ROC AUC of P(grade 0) and the accuracy of P(grade 0) >= threshold,
    from (N, 5) ICDR probabilities and (N,) true ICDR grades."""
    target = _labels(grades, "grades", NUM_GRADES, allow_scores=False) == 0
    return binary_task(messidor_score(probs, "normal"), target, threshold, "grades")


REFERABLE_DME_RISK = 2  # Messidor-2's adjudicated DME, IDRiD's risk 2: exudates within one disc diameter of the macula
TABLE2_REFERRAL = ReferableConfig(dr_min=REFERABLE_FROM_GRADE, dme_min=REFERABLE_DME_RISK)


def icdr_referral(probs: np.ndarray, grades: np.ndarray, dme_probs: np.ndarray | None = None,
                  dme_true: np.ndarray | None = None, threshold: float = 0.5) -> BinaryResult:
    """Table 2's referral on the ICDR scale: DR grade >= 2 or referable DME (an exact DME label of risk 2).

    The referable rule (``inference/referable.py``) at DR >= 2 or DME risk 2: the score is P(DR >= 2 or DME risk 2)
    from ``(N, 5)`` grade and ``(N, 3)`` DME probabilities, or P(DR >= 2) from a model without a DME head
    (``dme_probs`` None); the truth takes the DME label whatever the model has (``dme_true`` ``(N,)`` exact risks,
    negative where unknown or partial: DR alone).
    """
    messidor_score(probs, "referral")  # checks probs are (N, 5) softmax probabilities
    if dme_probs is not None and np.shape(dme_probs) != (np.shape(probs)[0], 3):
        raise ValueError(f"dme_probs must be ({np.shape(probs)[0]}, 3) probabilities, got shape {np.shape(dme_probs)}")
    score = referable_probability(probs, dme_probs, TABLE2_REFERRAL)
    grades = _labels(grades, "grades", NUM_GRADES, allow_scores=False)
    if dme_true is not None and np.shape(dme_true) != grades.shape:
        raise ValueError(f"dme_true has {np.size(dme_true)} labels for {grades.size} grades")
    return binary_task(score, is_referable(grades, dme_true, TABLE2_REFERRAL), threshold, "grades")
