"""Accumulators of one evaluation: pooled per-lesion pixel curves and per-image grade predictions.

:meth:`Scores.summary` turns them into the JSON-ready ``segmentation``, ``grading`` (with its ``normal`` task, DR 0
against the rest, and Table 2's ``referral``, DR >= 2 or referable DME), ``messidor``, ``dme``, ``joint`` and
``referable`` entries of ``metrics.json`` (the last three: :mod:`drcollab.evaluation.dme`); undefined numbers, e.g. a
lesion absent from every image, become ``null``.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from drcollab.config import ReferableConfig
from drcollab.constants import LESIONS, MISSING_DME, NUM_GRADES
from drcollab.data.records import Record
from drcollab.errors import DataError
from drcollab.evaluation.dme import allowed_risks, dme_summary, referable_scores
from drcollab.evaluation.grading_metrics import (
    MESSIDOR_GRADES,
    BinaryResult,
    grading_metrics,
    icdr_normal,
    icdr_referral,
    messidor_binary,
)
from drcollab.evaluation.metrics import DEFAULT_BINS, LesionCurves, UndefinedMetricWarning


def number(x: float) -> float | None:
    """A float for JSON: NaN (undefined) becomes None."""
    return None if x is None or math.isnan(x) else float(x)


def binary_entry(r: BinaryResult) -> dict[str, Any]:
    """A binary task's ``auc``, ``accuracy``, ``threshold``, ``n_pos`` and ``n_neg`` for JSON."""
    return {"auc": number(r.auc), "accuracy": number(r.accuracy), "sensitivity": r.sensitivity,
            "specificity": r.specificity, "threshold": r.threshold, "n_pos": r.n_pos, "n_neg": r.n_neg}


class Scores:
    """What an evaluation has seen so far.

    Args:
        bins: Score bins of the pooled pixel histograms (see :mod:`drcollab.evaluation.metrics`).
        referable: The model's referable rule.
    """

    def __init__(self, bins: int = DEFAULT_BINS, referable: ReferableConfig | None = None) -> None:
        self.curves = LesionCurves(bins)
        self.lesion_images = np.zeros(len(LESIONS), dtype=np.int64)  # images with >= 1 positive pixel per lesion
        self.n_segmentation = 0
        self.true: list[int] = []
        self.probs: list[np.ndarray] = []  # (5,) each
        self.dme_true: list[int] = []  # the exact risk; MISSING_DME where the record has none or a partial label
        self.dme_partial: list[tuple[int, ...] | None] = []  # the risks a partial label allows, else None
        self.dme_probs: list[np.ndarray] = []  # (3,) each; stays empty without a DME head
        self.referable_probs: list[float] = []  # each prediction's own P(referable), its flag's
        self.scale: str | None = None
        self.referable = referable or ReferableConfig()

    def add_lesions(self, maps: np.ndarray, masks: np.ndarray) -> None:
        """One image: ``(L, H, W)`` probabilities and bool masks at the original resolution."""
        self.curves.update(maps, masks)
        self.lesion_images += masks.reshape(len(LESIONS), -1).any(axis=1)
        self.n_segmentation += 1

    def add_grade(self, record: Record, probs: list[float], dme_probs: list[float] | None = None,
                  referable_probability: float | None = None) -> None:
        """One image's true grade (and DME) and the model's ``(5,)`` grade and ``(3,)`` DME probabilities, and its
        P(referable) (None: computed from the probabilities, see :func:`~drcollab.evaluation.dme.referable_scores`)."""
        if self.scale is None:
            self.scale = record.grade_scale
        elif record.grade_scale != self.scale:
            raise DataError(record.image_path, f"grade scale {record.grade_scale!r} mixed with {self.scale!r} in "
                                               "one evaluation: evaluate each dataset on its own")
        self.true.append(int(record.grade))
        self.probs.append(np.asarray(probs, dtype=np.float64))
        self.dme_true.append(MISSING_DME if record.dme is None else record.dme)
        self.dme_partial.append(record.dme_partial)
        if dme_probs:
            self.dme_probs.append(np.asarray(dme_probs, dtype=np.float64))
        if referable_probability is not None:
            self.referable_probs.append(float(referable_probability))

    def segmentation(self) -> dict[str, Any] | None:
        if self.n_segmentation == 0:
            return None
        out: dict[str, Any] = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)  # an absent lesion is reported as null
            for (lesion, result), images in zip(self.curves.results().items(), self.lesion_images, strict=True):
                out[lesion] = {"auc_roc": number(result.roc_auc), "auc_pr": number(result.average_precision),
                               "n_pos": result.n_pos, "n_neg": result.n_neg, "images_with_lesion": int(images)}
        return out

    def grading(self) -> dict[str, Any] | None:
        if not self.true or self.scale != "icdr":
            return None
        probs = np.stack(self.probs)  # (N, 5)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            result = grading_metrics(np.asarray(self.true), probs)
            normal = icdr_normal(probs, np.asarray(self.true))
            referral = icdr_referral(probs, np.asarray(self.true), np.stack(self.dme_probs) if self.dme_probs else None,
                                     np.asarray(self.dme_true))
        return {"accuracy": number(result.accuracy), "kappa": number(result.kappa),
                "confusion": result.confusion.tolist(), "n": len(self.true), "normal": binary_entry(normal),
                "referral": binary_entry(referral)}

    def messidor(self) -> dict[str, Any] | None:
        if not self.true or self.scale != "messidor":
            return None
        probs, grades = np.stack(self.probs), np.asarray(self.true)  # (N, 5), (N,)
        out: dict[str, Any] = {}
        for task in ("referral", "normal"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UndefinedMetricWarning)
                out[task] = binary_entry(messidor_binary(probs, grades, task))
        cells = grades * NUM_GRADES + probs.argmax(axis=1)
        out["confusion"] = np.bincount(cells, minlength=MESSIDOR_GRADES * NUM_GRADES).reshape(
            MESSIDOR_GRADES, NUM_GRADES).tolist()  # rows Messidor grade 0-3, columns predicted ICDR grade 0-4
        out["n"] = len(self.true)
        return out

    def dme_and_referable(self) -> dict[str, Any]:
        if not self.true:
            return {"dme": None, "joint": None, "referable": None}
        dme_probs = np.stack(self.dme_probs) if self.dme_probs else None  # (N, 3)
        dme_true = np.asarray(self.dme_true)
        return dme_summary(np.asarray(self.true), np.stack(self.probs), dme_true, dme_probs, self.scale == "icdr",
                           self.referable, self._own_referable(), allowed_risks(dme_true, self.dme_partial))

    def _own_referable(self) -> np.ndarray | None:
        """The predictions' own P(referable), when every graded image came with one."""
        return np.asarray(self.referable_probs) if len(self.referable_probs) == len(self.true) else None

    def referable_inputs(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(N,)`` P(referable) and ``(N,)`` bool truth of the model's rule for the graded images; None without
        ICDR grades (the rule is written on the ICDR scale)."""
        if not self.true or self.scale != "icdr":
            return None
        dme_probs = np.stack(self.dme_probs) if self.dme_probs else None  # (N, 3)
        return referable_scores(np.asarray(self.true), np.stack(self.probs), np.asarray(self.dme_true), dme_probs,
                                self.referable, self._own_referable())

    def summary(self) -> dict[str, Any]:
        return {"segmentation": self.segmentation(), "grading": self.grading(), "messidor": self.messidor(),
                **self.dme_and_referable()}
