"""Validation folds of a training split: fixed seed, stratified by grade when grades exist, a patient's images in one
fold (:attr:`Record.group`: EyePACS the patient, Messidor-2 a pair of neighbouring photos, IDRiD none)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from drcollab.data.records import Record
from drcollab.data.sources import DatasetSpec


@dataclass(frozen=True)
class ValFold:
    """The validation fold a training run held out, as its ``RUN/config.yaml`` says (``data.*``).

    Attributes:
        run: The run folder, named in messages and reports.
        pixel: Its X^P sources (``data.pixel``); their pooled records are split on their own.
        image: Its X^I sources (``data.image``); likewise.
        n_folds: ``data.n_folds``.
        val_fold: ``data.val_fold``, the fold held out.
        fold_seed: ``data.fold_seed``.
    """

    run: Path
    pixel: list[DatasetSpec]
    image: list[DatasetSpec]
    n_folds: int
    val_fold: int
    fold_seed: int


def fold_ids(records: Sequence[Record], n_folds: int, seed: int) -> np.ndarray:
    """Assign each record a fold in ``[0, n_folds)``; the images of one patient (:attr:`Record.fold_group`) share it.

    Patients are stratified by their highest grade (patients without a grade form their own stratum), shuffled
    with ``seed`` inside each stratum and dealt round-robin, so every fold gets each grade in proportion. The
    assignment depends only on the records' groups, names and grades and the seed, not on the order the reader
    returned them in. An image that is its own group (IDRiD, which publishes no patient ids) is dealt alone, as
    every image was before records carried groups, so its folds have not changed.
    """
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2, got {n_folds}")
    groups: dict[str, list[int]] = {}
    for i in sorted(range(len(records)), key=lambda i: (records[i].fold_group, records[i].name)):
        groups.setdefault(records[i].fold_group, []).append(i)
    if len(groups) < n_folds:
        raise ValueError(f"cannot make {n_folds} folds from {len(records)} images of {len(groups)} patients")
    strata: dict[int, list[list[int]]] = {}
    for members in groups.values():  # in the order of the group keys
        grades = [records[i].grade for i in members if records[i].grade is not None]
        strata.setdefault(max(grades, default=-1), []).append(members)
    rng = np.random.default_rng(seed)
    folds = np.empty(len(records), dtype=np.int64)
    offset = 0
    for key in sorted(strata):
        dealt = rng.permutation(len(strata[key]))
        for position, g in enumerate(dealt.tolist()):
            folds[strata[key][g]] = (position + offset) % n_folds
        offset += len(dealt)  # continue dealing where the last stratum stopped, so fold sizes stay even
    return folds


def split_records(
    records: Sequence[Record], n_folds: int, val_fold: int | None, seed: int
) -> tuple[list[Record], list[Record]]:
    """``(train, val)``: the records of ``val_fold`` are held out; ``val_fold=None`` trains on all."""
    if val_fold is None:
        return list(records), []
    if not 0 <= val_fold < n_folds:
        raise ValueError(f"val_fold must be in [0, {n_folds}), got {val_fold}")
    folds = fold_ids(records, n_folds, seed)
    train = [r for r, f in zip(records, folds, strict=True) if f != val_fold]
    val = [r for r, f in zip(records, folds, strict=True) if f == val_fold]
    return train, val
