"""DME and referable metrics of one evaluation: DME accuracy and kappa, the joint DR + DME accuracy, referable.

* DME: accuracy and quadratic weighted kappa over the risks 0-2 (images with an exact DME label; any grading
  scale). Beside them, over every image with a DME label, exact or partial (Messidor-2's "risk 0 or 1"): the accuracy
  where a partial label is right when the predicted risk is one it allows, and the ROC AUC of P(risk 2) for referable
  DME, risk 2 against a label that rules it out (risk 0, 1 or "0 or 1").
* joint: IDRiD's sub-challenge 2 score, the share of images whose DR grade *and* DME risk are both right (ICDR
  grades with a DME label).
* referable: sensitivity and specificity of the referable flag, each with its 95 % Wilson interval
  (:mod:`drcollab.evaluation.intervals`), and the ROC AUC of P(referable), against the same rule applied to the
  labels (:mod:`drcollab.inference.referable`; ICDR grades). With a DME head the truth is DR >= dr_min or
  DME >= dme_min (an image without an exact DME label, a partial one included: DR alone); without one, DR >= dr_min
  on both sides. On Messidor-2 that is its own referable truth, DR >= 2 or DME risk 2, with either dme_min.

Messidor's referral / normal AUCs on its own 0-3 scale are in :mod:`drcollab.evaluation.grading_metrics`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from drcollab.config import ReferableConfig
from drcollab.constants import NUM_DME
from drcollab.evaluation.grading_metrics import binary_roc_auc, kappa_from_confusion
from drcollab.evaluation.intervals import wilson_interval
from drcollab.evaluation.metrics import UndefinedMetricWarning
from drcollab.inference.referable import is_referable, referable_probability

REFERABLE_DME_RISK = NUM_DME - 1  # risk 2, exudates within one disc diameter of the macula: Messidor-2's "referable"


def _number(x: float) -> float | None:
    return None if np.isnan(x) else float(x)


def _pair(interval: tuple[float, float] | None) -> list[float] | None:
    return None if interval is None else list(interval)


def dme_metrics(y_true: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    """Accuracy, quadratic weighted kappa and ``(3, 3)`` confusion of DME risks ``(N,)`` against ``(N, 3)`` scores
    (accuracy and kappa None for no image)."""
    t, p = np.asarray(y_true, dtype=np.int64), np.asarray(probs).reshape(-1, NUM_DME).argmax(axis=1)
    confusion = np.bincount(t * NUM_DME + p, minlength=NUM_DME**2).reshape(NUM_DME, NUM_DME)
    if t.size == 0:
        return {"accuracy": None, "kappa": None, "confusion": confusion.tolist(), "n": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        kappa = kappa_from_confusion(confusion)
    return {"accuracy": float(np.mean(t == p)), "kappa": _number(kappa), "confusion": confusion.tolist(),
            "n": int(t.size)}


def allowed_risks(dme_true: np.ndarray, partial: Sequence[tuple[int, ...] | None] | None = None) -> np.ndarray:
    """``(N, 3)`` bool: the DME risks each image's label allows, one for an exact risk ``dme_true`` (-1 where
    unknown), those of a partial label ``partial[i]`` (e.g. ``(0, 1)``), none without a label."""
    dme_true = np.asarray(dme_true, dtype=np.int64).reshape(-1)
    allowed = np.zeros((dme_true.size, NUM_DME), dtype=bool)
    known = np.flatnonzero(dme_true >= 0)
    allowed[known, dme_true[known]] = True
    if partial is not None:
        if len(partial) != dme_true.size:
            raise ValueError(f"{len(partial)} partial labels for {dme_true.size} images")
        for i, risks in enumerate(partial):
            if risks is None:
                continue
            if dme_true[i] >= 0:
                raise ValueError(f"image {i} has both an exact DME risk and a partial label")
            allowed[i, list(risks)] = True
    return allowed


def partial_dme_metrics(allowed: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    """DME numbers over every image with a label, exact or partial: ``allowed`` ``(N, 3)`` (:func:`allowed_risks`)
    against ``(N, 3)`` scores.

    * ``accuracy_with_partial``: an image is right when its predicted risk (the arg-max) is one its label allows;
      over ``n`` exact and ``n_partial`` partial labels.
    * ``referable_dme_auc``: ROC AUC of P(risk 2) for risk 2 known (``referable_dme_n_pos``) against a label that rules
      it out, risk 0 or 1, exact or partial (``referable_dme_n_neg``); a label that leaves risk 2 open without
      settling it (partial ``(1, 2)``) is left out. None when a side has no image.
    """
    allowed, probs = np.asarray(allowed, dtype=bool), np.asarray(probs, dtype=np.float64)
    labelled = allowed.any(axis=1)
    allowed, probs = allowed[labelled], probs[labelled]
    right = allowed[np.arange(len(allowed)), probs.argmax(axis=1)]
    n_allowed = allowed.sum(axis=1)
    referable = allowed[:, REFERABLE_DME_RISK] & (n_allowed == 1)
    scored = referable | ~allowed[:, REFERABLE_DME_RISK]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        auc = binary_roc_auc(probs[scored, REFERABLE_DME_RISK], referable[scored])
    n_pos = int(referable.sum())
    return {"accuracy_with_partial": float(right.mean()) if right.size else None,
            "n_partial": int((n_allowed > 1).sum()), "referable_dme_auc": _number(auc),
            "referable_dme_n_pos": n_pos, "referable_dme_n_neg": int(scored.sum()) - n_pos}


def joint_accuracy(dr_true: np.ndarray, dr_pred: np.ndarray, dme_true: np.ndarray, dme_pred: np.ndarray) -> float:
    """IDRiD sub-challenge 2: the share of images with both the DR grade and the DME risk right."""
    return float(np.mean((np.asarray(dr_true) == dr_pred) & (np.asarray(dme_true) == dme_pred)))


@dataclass(frozen=True)
class BinaryScore:
    sensitivity: float | None  # None: no positive image
    specificity: float | None  # None: no negative image
    auc: float | None  # None: one class absent
    n_pos: int
    n_neg: int
    sensitivity_ci: tuple[float, float] | None = None  # 95 % Wilson interval; None with the share
    specificity_ci: tuple[float, float] | None = None


def binary_score(scores: np.ndarray, targets: np.ndarray, threshold: float) -> BinaryScore:
    """Sensitivity and specificity of ``scores >= threshold`` with their 95 % Wilson intervals, and the ROC AUC of
    ``scores``, for bool ``targets``."""
    scores, targets = np.asarray(scores, dtype=np.float64), np.asarray(targets, dtype=bool)
    flagged = scores >= threshold
    n_pos, n_neg = int(targets.sum()), int((~targets).sum())
    found, cleared = int(flagged[targets].sum()), int((~flagged[~targets]).sum())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        auc = binary_roc_auc(scores, targets)
    sens = found / n_pos if n_pos else None
    spec = cleared / n_neg if n_neg else None
    return BinaryScore(sens, spec, _number(auc), n_pos, n_neg, wilson_interval(found, n_pos) if n_pos else None,
                       wilson_interval(cleared, n_neg) if n_neg else None)


def referable_scores(
    dr_true: np.ndarray, dr_probs: np.ndarray, dme_true: np.ndarray, dme_probs: np.ndarray | None,
    rule: ReferableConfig, referable_probs: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(N,)`` P(referable) of the graded images and ``(N,)`` bool truth of ``rule`` from their labels (ICDR
    grades; DME risks -1 where unknown, judged by DR alone; no DME head: DR alone on both sides).

    ``referable_probs``: the predictions' own P(referable), the values their flags were set from (the probabilities
    in a record are rounded); None computes them from ``dr_probs`` and ``dme_probs``."""
    truth = is_referable(dr_true, None if dme_probs is None else dme_true, rule)
    if referable_probs is None:
        referable_probs = referable_probability(dr_probs, dme_probs, rule)
    return np.asarray(referable_probs, dtype=np.float64), truth


def dme_summary(
    dr_true: np.ndarray, dr_probs: np.ndarray, dme_true: np.ndarray, dme_probs: np.ndarray | None, icdr: bool,
    rule: ReferableConfig, referable_probs: np.ndarray | None = None, dme_allowed: np.ndarray | None = None,
) -> dict[str, Any]:
    """``metrics.json``'s ``dme``, ``joint`` and ``referable`` entries (None where they do not apply).

    Args:
        dr_true: ``(N,)`` DR grades of the graded images; ``dr_probs`` their ``(N, 5)`` probabilities.
        dme_true: ``(N,)`` exact DME risks, -1 where unknown or partial; ``dme_probs``: ``(N, 3)``, None without a
            DME head.
        icdr: The grades are on the ICDR scale (joint accuracy and referable need it).
        rule: The model's referable rule.
        referable_probs: ``(N,)`` the predictions' own P(referable) (see :func:`referable_scores`).
        dme_allowed: ``(N, 3)`` the risks each label allows, partial labels included (:func:`allowed_risks`);
            None: the exact labels of ``dme_true`` only.
    """
    known = dme_true >= 0
    exact = allowed_risks(dme_true)
    allowed = exact if dme_allowed is None else np.asarray(dme_allowed, dtype=bool)
    if allowed.shape != exact.shape or (allowed[known] != exact[known]).any():
        raise ValueError("dme_allowed must allow exactly the risk of each exact label in dme_true")
    out: dict[str, Any] = {"dme": None, "joint": None, "referable": None}
    if dme_probs is not None and allowed.any():
        out["dme"] = {**dme_metrics(dme_true[known], dme_probs[known]), **partial_dme_metrics(allowed, dme_probs)}
    if dme_probs is not None and known.any():
        if icdr:
            out["joint"] = {"accuracy": joint_accuracy(dr_true[known], dr_probs[known].argmax(axis=1),
                                                       dme_true[known], dme_probs[known].argmax(axis=1)),
                            "n": int(known.sum())}
    if icdr and len(dr_true):
        r = binary_score(*referable_scores(dr_true, dr_probs, dme_true, dme_probs, rule, referable_probs),
                         rule.threshold)
        out["referable"] = {"sensitivity": r.sensitivity, "specificity": r.specificity, "auc": r.auc,
                            "threshold": rule.threshold, "n_pos": r.n_pos, "n_neg": r.n_neg,
                            "sensitivity_ci95": _pair(r.sensitivity_ci), "specificity_ci95": _pair(r.specificity_ci),
                            "interval": "Wilson score, 95%", "rule": rule.model_dump(),
                            "uses_dme": dme_probs is not None}
    return out

