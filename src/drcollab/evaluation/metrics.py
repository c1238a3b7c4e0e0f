"""Pixel-level ROC and precision-recall for lesion maps, pooled over a whole test set in bounded memory.

Each lesion's scores (probabilities in [0, 1]) are quantised into ``bins`` equal-width bins and counted per class,
so memory is ``2 * bins`` integers however many images are seen, and two accumulators from different processes
combine by adding their counts. Scores that fall into the same bin count as one tied threshold, exactly as
scikit-learn treats equal scores; with the default 2**16 bins the results match ``sklearn.metrics.roc_auc_score`` and
``average_precision_score`` within 1e-3 on continuous scores (tests/evaluation/test_metrics.py), and exactly when the
scores take few distinct values at least ``1 / bins`` apart. Scores closer than ``1 / bins`` (e.g. 1e-7 vs 1e-6, or
saturated sigmoid outputs just below 1.0) are tied here but still ordered by scikit-learn, which is where the two
differ most, mostly in AP; raise ``bins`` if a model's scores pile up there.

Conventions:
    * An image without a mask file for a lesion counts as all-negative for that lesion (IDRiD convention): pass an
      all-False target, do not skip the image.
    * No positive pixel in the whole set: ROC AUC and AP are undefined; both return NaN and an
      :class:`UndefinedMetricWarning` is issued (scikit-learn 1.9 returns NaN for ROC AUC but 0.0 for AP; NaN keeps a
      lesion absent from the test set out of any mean, and ``CurveResult.defined`` is False).
    * No negative pixel: ROC AUC is NaN (with a warning); AP is defined (1.0 when all pixels are positive).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from drcollab.constants import LESIONS

DEFAULT_BINS = 2**16


class UndefinedMetricWarning(RuntimeWarning):
    """A curve metric was requested for a set with no positive (or no negative) pixel."""


@dataclass(frozen=True)
class CurveResult:
    """Summary of one binary curve: areas and class counts."""

    roc_auc: float
    average_precision: float
    n_pos: int
    n_neg: int

    @property
    def defined(self) -> bool:
        """True when both classes occur, so both areas are meaningful."""
        return self.n_pos > 0 and self.n_neg > 0


def _check_scores(scores: np.ndarray) -> None:
    if scores.size == 0:
        return
    lo, hi = float(scores.min()), float(scores.max())
    if not (lo >= 0.0 and hi <= 1.0):  # also catches NaN
        raise ValueError(f"scores must be probabilities in [0, 1]; got min {lo}, max {hi} (apply sigmoid first)")


class StreamingBinaryCurve:
    """Histogram accumulator for pooled pixel-level ROC / PR curves of one binary label.

    Args:
        bins: Number of equal-width score bins on [0, 1]; bin ``b`` holds scores in ``[b / bins, (b + 1) / bins)``
            and the last bin also holds 1.0.
        name: Label used in warnings and errors, e.g. the lesion.
    """

    def __init__(self, bins: int = DEFAULT_BINS, name: str = "") -> None:
        if bins < 2:
            raise ValueError(f"bins must be >= 2, got {bins}")
        self.bins = int(bins)
        self.name = name
        self.pos = np.zeros(self.bins, dtype=np.int64)  # positive pixels per score bin
        self.neg = np.zeros(self.bins, dtype=np.int64)  # negative pixels per score bin

    @property
    def n_pos(self) -> int:
        return int(self.pos.sum())

    @property
    def n_neg(self) -> int:
        return int(self.neg.sum())

    def update(self, scores: np.ndarray, targets: np.ndarray, valid: np.ndarray | None = None) -> None:
        """Add one batch of pixels (any shape; ``targets`` and ``valid`` are bool arrays of the same shape)."""
        scores, targets = np.asarray(scores), np.asarray(targets)
        if targets.dtype != np.bool_:
            raise TypeError(f"targets must be a bool array, got dtype {targets.dtype} (use `mask > 0`)")
        if scores.shape != targets.shape:
            raise ValueError(f"scores shape {scores.shape} != targets shape {targets.shape}")
        if valid is not None:
            valid = np.asarray(valid)
            if valid.dtype != np.bool_ or valid.shape != scores.shape:
                raise ValueError(f"valid must be a bool array of shape {scores.shape}, got {valid.dtype} {valid.shape}")
            scores, targets = scores[valid], targets[valid]
        _check_scores(scores)
        scores = scores.astype(np.float32, copy=False)
        idx = (scores * np.float32(self.bins)).astype(np.int32)  # floor for scores >= 0
        np.minimum(idx, self.bins - 1, out=idx)  # score 1.0 goes to the last bin
        total = np.bincount(idx.ravel(), minlength=self.bins)
        pos = np.bincount(idx[targets], minlength=self.bins)  # targets are sparse: cheap
        self.pos += pos
        self.neg += total - pos

    def merge(self, other: StreamingBinaryCurve) -> StreamingBinaryCurve:
        """Add another accumulator's counts into this one (e.g. from another process); returns self."""
        if other.bins != self.bins:
            raise ValueError(f"cannot merge curves with {other.bins} and {self.bins} bins")
        self.pos += other.pos
        self.neg += other.neg
        return self

    def _cumulative(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """TP and FP counts at each occupied bin's lower edge, thresholds in decreasing order."""
        occupied = np.flatnonzero((self.pos + self.neg) > 0)[::-1]
        tp = np.cumsum(self.pos[occupied]).astype(np.float64)
        fp = np.cumsum(self.neg[occupied]).astype(np.float64)
        return tp, fp, occupied / self.bins

    def _warn_undefined(self, metric: str, need_neg: bool) -> bool:
        missing = "positive" if self.n_pos == 0 else ("negative" if need_neg and self.n_neg == 0 else None)
        if missing is not None:
            where = f"{self.name}: " if self.name else ""
            warnings.warn(f"{where}{metric} is undefined: no {missing} pixel was seen; returning NaN",
                          UndefinedMetricWarning, stacklevel=3)
        return missing is not None

    def roc_auc(self) -> float:
        """Area under the ROC curve (trapezoidal, ties count half), NaN if either class is absent."""
        if self._warn_undefined("ROC AUC", need_neg=True):
            return float("nan")
        above = np.cumsum(self.pos[::-1])[::-1] - self.pos  # positives in strictly higher bins
        wins = np.dot(self.neg.astype(np.float64), above + 0.5 * self.pos)
        return float(wins / (float(self.n_pos) * float(self.n_neg)))

    def average_precision(self) -> float:
        """Sum over thresholds of (R_n - R_{n-1}) * P_n, as sklearn's ``average_precision_score``.

        NaN (with a warning) if no positive pixel was seen.
        """
        if self._warn_undefined("average precision", need_neg=False):
            return float("nan")
        tp, fp, _ = self._cumulative()
        d_recall = np.diff(tp, prepend=0.0) / tp[-1]
        return float(np.dot(d_recall, tp / (tp + fp)))

    def roc_curve(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(fpr, tpr, thresholds)`` like ``sklearn.metrics.roc_curve(drop_intermediate=False)``.

        Thresholds are the occupied bins' lower edges in decreasing order, preceded by ``inf`` for the (0, 0) point.
        A rate whose class is absent is NaN.
        """
        tp, fp, thr = self._cumulative()
        with np.errstate(invalid="ignore", divide="ignore"):
            tpr = np.concatenate([[0.0], tp / self.n_pos])
            fpr = np.concatenate([[0.0], fp / self.n_neg])
        return fpr, tpr, np.concatenate([[np.inf], thr])

    def pr_curve(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(precision, recall, thresholds)`` like ``sklearn.metrics.precision_recall_curve``.

        Thresholds increase; the arrays end with the point precision 1, recall 0 that has no threshold.
        Recall is NaN when no positive pixel was seen.
        """
        tp, fp, thr = self._cumulative()
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = np.concatenate([(tp / (tp + fp))[::-1], [1.0]])
            recall = np.concatenate([(tp / self.n_pos)[::-1], [0.0]])
        return precision, recall, thr[::-1]

    def result(self) -> CurveResult:
        return CurveResult(self.roc_auc(), self.average_precision(), self.n_pos, self.n_neg)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Plain int64 arrays (safe for safetensors / ``np.savez``); the bin count is their length."""
        return {"pos": self.pos.copy(), "neg": self.neg.copy()}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray], name: str = "") -> StreamingBinaryCurve:
        pos, neg = np.asarray(state["pos"]), np.asarray(state["neg"])
        if pos.ndim != 1 or pos.shape != neg.shape:
            raise ValueError(f"curve state needs 1-D 'pos' and 'neg' of equal length, got {pos.shape} and {neg.shape}")
        if (pos < 0).any() or (neg < 0).any():
            raise ValueError("curve state has negative counts")
        curve = cls(bins=pos.size, name=name)
        curve.pos[:], curve.neg[:] = pos, neg
        return curve


class LesionCurves:
    """One :class:`StreamingBinaryCurve` per lesion, in :data:`drcollab.constants.LESIONS` order.

    Feed it probability maps and masks stacked per lesion; an image without a mask file for a lesion must be fed
    an all-False mask for it (it counts as all-negative), never skipped.
    """

    def __init__(self, bins: int = DEFAULT_BINS, lesions: tuple[str, ...] = LESIONS) -> None:
        self.lesions = tuple(lesions)
        self.curves = {name: StreamingBinaryCurve(bins, name) for name in self.lesions}

    def update(self, scores: np.ndarray, targets: np.ndarray, valid: np.ndarray | None = None) -> None:
        """Add pixels: ``scores`` float and ``targets`` bool, shaped (L, H, W) or (B, L, H, W).

        ``valid`` (bool, (H, W) or (B, H, W)) marks the pixels to count, e.g. the field of view, for every lesion.
        """
        scores, targets = np.asarray(scores), np.asarray(targets)
        n = len(self.lesions)
        if scores.ndim not in (3, 4) or scores.shape[-3] != n:
            raise ValueError(f"scores must be (L, H, W) or (B, L, H, W) with L={n}, got shape {scores.shape}")
        if targets.shape != scores.shape:
            raise ValueError(f"targets shape {targets.shape} != scores shape {scores.shape}")
        if valid is not None and np.shape(valid) != scores.shape[:-3] + scores.shape[-2:]:
            raise ValueError(f"valid must have shape {scores.shape[:-3] + scores.shape[-2:]}, got {np.shape(valid)}")
        for i, name in enumerate(self.lesions):
            self.curves[name].update(scores[..., i, :, :], targets[..., i, :, :], valid)

    def merge(self, other: LesionCurves) -> LesionCurves:
        if other.lesions != self.lesions:
            raise ValueError(f"cannot merge curves for lesions {other.lesions} into {self.lesions}")
        for name in self.lesions:
            self.curves[name].merge(other.curves[name])
        return self

    def results(self) -> dict[str, CurveResult]:
        """Per-lesion areas; a lesion with no positive pixel gets NaN areas and a warning naming it."""
        return {name: curve.result() for name, curve in self.curves.items()}

    def state_dict(self) -> dict[str, np.ndarray]:
        """Flat ``{"MA.pos": ..., "MA.neg": ..., ...}`` of int64 arrays."""
        return {f"{name}.{key}": arr for name, c in self.curves.items() for key, arr in c.state_dict().items()}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray], lesions: tuple[str, ...] = LESIONS) -> LesionCurves:
        missing = [f"{n}.{k}" for n in lesions for k in ("pos", "neg") if f"{n}.{k}" not in state]
        if missing:
            raise ValueError(f"lesion curve state lacks keys {missing}")
        obj = cls(bins=2, lesions=lesions)
        obj.curves = {n: StreamingBinaryCurve.from_state({"pos": state[f"{n}.pos"], "neg": state[f"{n}.neg"]}, n)
                      for n in lesions}
        return obj
