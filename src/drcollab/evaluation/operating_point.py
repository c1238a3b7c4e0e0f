"""The referral threshold a programme chooses: the one that reaches a target sensitivity or specificity on a labelled
set, and the ROC curve it lies on.

A photo is flagged when its score (P(referable)) is >= the threshold. The candidate thresholds are the distinct
scores of the set, as on an ROC curve, plus one just above the highest score (nothing flagged), so the chosen
threshold is always a value some photo of the set had:

* target sensitivity s: the **largest** threshold whose sensitivity is >= s. It flags the fewest photos that
  still find that share of the referable ones, so it has the best specificity of those reaching s.
* target specificity x: the **smallest** threshold whose specificity is >= x, the best sensitivity of those
  reaching x.

Every achieved share comes with its 95 % Wilson interval (:mod:`drcollab.evaluation.intervals`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from drcollab.evaluation.intervals import Proportion, proportion

Target = Literal["sensitivity", "specificity"]


@dataclass(frozen=True)
class RocPoints:
    """Thresholds in decreasing order and the positives / negatives flagged (score >= threshold) at each.

    The first threshold lies just above the highest score (nothing flagged), the last is the lowest score
    (everything flagged), so the curve runs from (0, 0) to (1, 1).
    """

    thresholds: np.ndarray  # (T,) float64, decreasing
    tp: np.ndarray  # (T,) int64 positives flagged
    fp: np.ndarray  # (T,) int64 negatives flagged
    n_pos: int
    n_neg: int

    @property
    def tpr(self) -> np.ndarray:
        return self.tp / max(self.n_pos, 1)

    @property
    def fpr(self) -> np.ndarray:
        return self.fp / max(self.n_neg, 1)


@dataclass(frozen=True)
class OperatingPoint:
    """A threshold and what it achieves on the set it was chosen (or measured) on."""

    threshold: float
    sensitivity: Proportion
    specificity: Proportion
    target: Target | None = None  # what was asked for; None: a threshold given, not chosen
    target_value: float | None = None


def _classes(scores: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores, targets = np.asarray(scores, dtype=np.float64).ravel(), np.asarray(targets, dtype=bool).ravel()
    if scores.size != targets.size:
        raise ValueError(f"scores has {scores.size} values but targets has {targets.size}")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite")
    return scores, targets


def roc_points(scores: np.ndarray, targets: np.ndarray) -> RocPoints:
    """Every operating point of ``scores`` (flag when >= threshold) against bool ``targets``."""
    scores, targets = _classes(scores, targets)
    if scores.size == 0:
        raise ValueError("no scores")
    distinct = np.unique(scores)[::-1]  # decreasing
    thresholds = np.concatenate([[np.nextafter(distinct[0], np.inf)], distinct])
    pos, neg = np.sort(scores[targets]), np.sort(scores[~targets])
    tp = pos.size - np.searchsorted(pos, thresholds, side="left")  # scores >= threshold
    fp = neg.size - np.searchsorted(neg, thresholds, side="left")
    return RocPoints(thresholds, tp.astype(np.int64), fp.astype(np.int64), int(pos.size), int(neg.size))


def measure(scores: np.ndarray, targets: np.ndarray, threshold: float) -> OperatingPoint:
    """Sensitivity and specificity of ``scores >= threshold``, each with its 95 % Wilson interval.

    Raises:
        ValueError: a class is absent (a share of no case has no value).
    """
    scores, targets = _classes(scores, targets)
    _need_both(targets)
    flagged = scores >= threshold
    return OperatingPoint(float(threshold), proportion(int(flagged[targets].sum()), int(targets.sum())),
                          proportion(int((~flagged[~targets]).sum()), int((~targets).sum())))


def _need_both(targets: np.ndarray) -> None:
    n_pos = int(targets.sum())
    if n_pos == 0 or n_pos == targets.size:
        raise ValueError(f"need positive and negative cases, got {n_pos} positive and {targets.size - n_pos} "
                         "negative")


def choose_threshold(scores: np.ndarray, targets: np.ndarray, target: Target, value: float) -> OperatingPoint:
    """The threshold reaching ``target`` (sensitivity or specificity) >= ``value`` on this set (module docstring).

    Raises:
        ValueError: ``value`` outside (0, 1], an unknown target, a class absent, or a threshold outside (0, 1)
            (a bundle's threshold must lie strictly between 0 and 1).
    """
    if not 0 < value <= 1:
        raise ValueError(f"target {target} {value} is outside (0, 1]")
    scores, targets = _classes(scores, targets)
    _need_both(targets)
    pts = roc_points(scores, targets)
    if target == "sensitivity":
        reached = np.flatnonzero(pts.tp / pts.n_pos >= value)
        index = reached[0]  # thresholds decrease: the first reaching it is the largest
    elif target == "specificity":
        reached = np.flatnonzero((pts.n_neg - pts.fp) / pts.n_neg >= value)
        index = reached[-1]  # the last reaching it is the smallest
    else:
        raise ValueError(f"target {target!r}: choose sensitivity or specificity")
    threshold = float(pts.thresholds[index])
    if not 0 < threshold < 1:
        raise ValueError(f"reaching {target} {value} needs threshold {threshold!r}, outside (0, 1): no referral "
                         "threshold of a bundle can do it on this set")
    point = measure(scores, targets, threshold)
    return OperatingPoint(threshold, point.sensitivity, point.specificity, target, value)
