"""``drcollab calibrate``: choose a bundle's referral threshold on a labelled set and write a copy that refers at it.

The set's graded photos are predicted exactly as ``drcollab evaluate`` predicts them (:func:`run_evaluation`, in
the setting ``predict`` and ``serve`` run in, with the bundle's tiles and test-time flips), and their P(referable)
are held against the bundle's rule applied to their labels. :func:`~drcollab.evaluation.operating_point.
choose_threshold` picks the threshold reaching the target sensitivity (the largest) or specificity (the
smallest), and :func:`~drcollab.inference.bundle_copy.copy_bundle` writes the copy with ``referable.threshold``
set and a ``calibration`` record of what was done and what it achieved, with 95 % Wilson intervals. The source
bundle is never changed.

The threshold is the P(referable) of one photo of the set (the last referable photo it must find), so that photo is
flagged by a hair: the same photo predicted in another numeric setting (bf16 or fp32, measured per bundle and
machine, :mod:`drcollab.inference.autotune`) may fall either side. The copy is therefore remembered, on this machine,
to run in the setting the threshold was chosen in, and the record names it.

Everything that can be checked before the model runs is: the target, the output folder, the labels (a set without
referable, or without non-referable, photos cannot set a threshold).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from drcollab.config import ReferableConfig
from drcollab.constants import VERSION
from drcollab.errors import ConfigError, DataError
from drcollab.evaluation.evaluate import run_evaluation
from drcollab.evaluation.operating_point import OperatingPoint, Target, choose_threshold
from drcollab.evaluation.selection import EvalSet
from drcollab.inference.autotune import remember_choice
from drcollab.inference.bundle import bundle_fingerprint, load_bundle
from drcollab.inference.bundle_copy import check_new_folder, copy_bundle
from drcollab.inference.referable import is_referable, rule_text

CHOICE = {"sensitivity": "the largest threshold whose sensitivity is >= the target",
          "specificity": "the smallest threshold whose specificity is >= the target"}


@dataclass(frozen=True)
class Calibration:
    """The new bundle, the operating point chosen and the ``calibration`` record written into its ``bundle.json``."""

    bundle: Path
    point: OperatingPoint
    record: dict[str, Any]


def check_target(sensitivity: float | None = None, specificity: float | None = None) -> tuple[Target, float]:
    """The one target given, as ``(name, value)``.

    Raises:
        ConfigError: both or neither given, or a value outside (0, 1].
    """
    given = {k: v for k, v in (("sensitivity", sensitivity), ("specificity", specificity)) if v is not None}
    if len(given) != 1:
        raise ConfigError("give one target: --target-sensitivity S or --target-specificity X (got "
                          f"{'both' if given else 'neither'})")
    [(name, value)] = given.items()
    if not 0 < value <= 1:
        raise ConfigError(f"--target-{name} {value:g} is outside (0, 1]: give a share such as 0.90")
    return name, value  # type: ignore[return-value]


def _graded(eval_set: EvalSet, rule: ReferableConfig, uses_dme: bool) -> EvalSet:
    """The set's graded photos alone, once their labels hold both referable and non-referable photos.

    Raises:
        DataError: no graded photo, grades not on the ICDR scale, or one class absent.
    """
    where = eval_set.info.get("root") or eval_set.description
    records = eval_set.grading
    if not records:
        raise DataError(where, f"{eval_set.description} has no graded photo to calibrate on")
    if any(r.grade_scale != "icdr" for r in records):
        raise DataError(where, f"{eval_set.description} is graded on the Messidor scale, not ICDR: the referable rule "
                               "is written on the ICDR scale; calibrate on an ICDR-graded set")
    dme = np.array([-1 if r.dme is None else r.dme for r in records]) if uses_dme else None
    truth = is_referable(np.array([r.grade for r in records]), dme, rule)
    if truth.all() or not truth.any():
        missing = "non-referable" if truth.all() else "referable"
        raise DataError(where, f"{eval_set.description} has no {missing} photo ({rule_text(rule, uses_dme)}) among its "
                               f"{len(records)} graded photos: a threshold needs both; calibrate on a set holding both")
    return replace(eval_set, segmentation=[])


def calibrate(
    bundle_path: str | Path,
    eval_set: EvalSet,
    out_dir: str | Path,
    target: Target,
    value: float,
    *,
    batch_size: int = 4,
    device: str = "cpu",
    workers: int = 0,
    min_fov_fraction: float | None = None,
    progress: bool = True,
) -> Calibration:
    """Choose the referral threshold reaching ``target`` >= ``value`` on ``eval_set`` and write the calibrated copy
    of the bundle to ``out_dir`` (a new or empty folder).

    Raises:
        ConfigError: a target outside (0, 1].
        DataError: a bad bundle, set or output folder (naming it); a set without both classes; a threshold the target
            would need outside (0, 1).
    """
    check_target(**{target: value})
    source = check_new_folder(bundle_path, out_dir)
    bundle = load_bundle(source)
    if bundle.grader is None:
        raise DataError(source, "has no grader: there is no referral to calibrate")
    uses_dme = bundle.grader.dme_classifier is not None
    graded = _graded(eval_set, bundle.referable, uses_dme)
    with tempfile.TemporaryDirectory(prefix="drcollab-calibrate-") as tmp:
        evaluation = run_evaluation(source, graded, tmp, batch_size=batch_size, device=device, overlays=0,
                                    workers=workers, min_fov_fraction=min_fov_fraction, progress=progress)
    probs, truth = evaluation.scores.referable_inputs()
    try:
        point = choose_threshold(probs, truth, target, value)
    except ValueError as err:  # a class left with no photo wide enough, or a threshold of 0 or 1
        raise DataError(graded.info.get("root") or graded.description, f"cannot calibrate on {graded.description}: "
                        f"{err}") from err
    record = calibration_record(point, evaluation.metrics, bundle.referable, uses_dme, source)
    rule = {**bundle.referable.model_dump(), "threshold": point.threshold}
    out = copy_bundle(source, out_dir, {"referable": rule, "calibration": record})
    if evaluation.choice is not None:  # on this machine the copy runs in the setting its threshold was chosen in
        remember_choice(bundle_fingerprint(load_bundle(out)), device, evaluation.choice)
    return Calibration(out, point, record)


def calibration_record(point: OperatingPoint, metrics: dict[str, Any], rule: ReferableConfig, uses_dme: bool,
                       source: Path) -> dict[str, Any]:
    """The ``calibration`` entry of the new ``bundle.json``: the set, the target, what the threshold achieved."""
    data = metrics["data"]
    return {
        "threshold": point.threshold,
        "previous_threshold": rule.threshold,
        "target": {point.target: point.target_value},
        "choice": CHOICE[point.target],
        "set": {"description": metrics["description"], "dataset": data["dataset"], "root": data["root"],
                "format": data["format"], "split": data["split"], "fold": data["fold"]},
        "images": point.sensitivity.n + point.specificity.n,
        "left_out": [u["name"] for u in metrics["ungradable"]],
        "positives": point.sensitivity.n,
        "negatives": point.specificity.n,
        "rule": rule_text(rule, uses_dme),
        "sensitivity": point.sensitivity.record(),
        "specificity": point.specificity.record(),
        "interval": "Wilson score, 95%",
        "settings": {k: metrics["settings"][k] for k in ("device", "precision", "channels_last", "tile", "tta",
                                                          "min_fov_diameter")},
        "source": str(source),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "drcollab_version": VERSION,
    }
