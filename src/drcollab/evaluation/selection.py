"""Which images an evaluation scores: the dataset layout, its split, and optionally a run's validation fold.

An :class:`EvalSet` keeps the segmentation records (with masks) and the grading records (with a grade) apart,
because a run splits them apart: its ``data.pixel`` sources (X^P, images with masks) and its ``data.image``
sources (X^I, images with grades) each get their own folds (``training/data.py``), so one synthetic image can
be in the X^P validation fold and in the X^I training folds. Each source of a set is split on its own, so another
source in a run's config does not move a source's validation fold.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from drcollab.data.folds import ValFold, split_records
from drcollab.data.idrid import GRADING, SEGMENTATION
from drcollab.data.paths import normalise_name, require_root
from drcollab.data.records import Record, ScanReport
from drcollab.data.sources import SPLIT_FORMATS, DatasetSpec, read_records
from drcollab.errors import ConfigError, DataError

log = logging.getLogger(__name__)

EvalFormat = Literal["auto", "idrid", "idrid-seg", "idrid-grade", "eyepacs", "messidor", "messidor2", "generic"]
DATASET_NAMES = {"idrid-seg": "IDRiD", "idrid-grade": "IDRiD", "eyepacs": "EyePACS", "messidor": "Messidor",
                 "messidor2": "Messidor-2", "generic": "generic"}  # format (and Record.source tag) -> dataset name


@dataclass
class EvalSet:
    """Records to score per task, and what they are in words (used to label every reported number).

    Attributes:
        segmentation: Records with lesion masks, scored for per-lesion pixel AUCs.
        grading: Records with a grade, scored for accuracy / kappa (Messidor: referral / normal).
        dataset: ``IDRiD``, ``EyePACS``, ``Messidor`` or ``generic``.
        description: E.g. "validation fold 0 of 5 of the IDRiD training split".
        info: JSON-ready facts: root, format, split, sources, fold.
        specs: The dataset spec each task's records came from (``{"segmentation": spec, "grading": spec}``).
    """

    segmentation: list[Record]
    grading: list[Record]
    dataset: str = "generic"
    description: str = "the given images"
    info: dict[str, Any] = field(default_factory=dict)
    specs: dict[str, DatasetSpec] = field(default_factory=dict)

    @classmethod
    def from_records(cls, records: list[Record], dataset: str | None = None, description: str = "the given images"
                     ) -> EvalSet:
        """Segmentation = the records with masks, grading = the records with a grade.

        ``dataset`` defaults to the one all records' ``source`` tags name (``generic`` when they differ).
        """
        if dataset is None:
            names = {DATASET_NAMES.get(r.source, "generic") for r in records}
            dataset = names.pop() if len(names) == 1 else "generic"
        info = {"root": None, "format": None, "split": None, "fold": None, "sources": []}
        return cls([r for r in records if r.has_masks], [r for r in records if r.grade is not None],
                   dataset, description, info)

    def records(self) -> list[Record]:
        """Every record once (segmentation first), for a single prediction pass."""
        seen: set[tuple[str, Path]] = set()
        out = []
        for r in self.segmentation + self.grading:
            if (r.name, r.image_path) not in seen:
                seen.add((r.name, r.image_path))
                out.append(r)
        return out


def detect_format(root: Path) -> str:
    """``idrid``, ``generic``, ``messidor``, ``messidor2`` or ``eyepacs`` from the files in ``root``.

    Raises:
        DataError: naming the root when no known layout is found.
    """
    root = require_root(root)
    names = {normalise_name(p.name) for p in root.iterdir()}
    if normalise_name(root.name) in (normalise_name(SEGMENTATION), normalise_name(GRADING)):
        return "idrid"
    if {normalise_name(SEGMENTATION), normalise_name(GRADING)} & names:
        return "idrid"
    if (root / "labels.csv").is_file():
        return "generic"
    if any(root.glob("Annotation_Base*")) or any(root.glob("*/Annotation_Base*")):
        return "messidor"
    if "messidor_data.csv" in names:
        return "messidor2"
    if {"trainlabels.csv", "retinopathy_solution.csv"} & names:
        return "eyepacs"
    raise DataError(root, f"cannot tell the dataset layout (no '{SEGMENTATION}' / '{GRADING}' folder, labels.csv, "
                          "Annotation_Base*.xls, messidor_data.csv or trainLabels.csv): pass --format")


def _split_words(dataset: str, split: str, fmt: str, root: Path) -> str:
    if fmt in SPLIT_FORMATS:
        return f"the {dataset} {'training' if split == 'train' else 'test'} split"
    return f"the {dataset} set" if fmt in ("messidor", "messidor2") else f"the {dataset} set '{root.resolve().name}'"


def read_eval_set(root: Path, fmt: EvalFormat = "auto", split: str = "train") -> EvalSet:
    """Read a dataset for evaluation; ``idrid`` (and ``auto`` on an IDRiD root) takes whichever of part A
    (segmentation) and part B (grading) exists.

    Raises:
        DataError: from the readers, naming the file; ConfigError for a split the format does not have.
    """
    root = Path(root)
    fmt = detect_format(root) if fmt == "auto" else fmt
    if fmt == "idrid":
        names = {normalise_name(p.name) for p in require_root(root).iterdir()} | {normalise_name(root.name)}
        formats = [f for f, part in (("idrid-seg", SEGMENTATION), ("idrid-grade", GRADING))
                   if normalise_name(part) in names]
        if not formats:
            raise DataError(root, f"not an IDRiD root: no '{SEGMENTATION}' or '{GRADING}' folder in it")
    else:
        formats = [fmt]
    specs: dict[str, DatasetSpec] = {}
    records: list[Record] = []
    for f in formats:
        try:
            spec = DatasetSpec(format=f, root=root, split=split)
        except ValueError as err:
            raise ConfigError(f"--format {f} --split {split}: {err}") from err
        report = ScanReport()
        part = read_records(spec, report)
        if report.skipped:  # Messidor-2's ungradable photos
            log.warning("%s %s: %s", f, root, report.summary())
        if any(r.has_masks for r in part):
            specs["segmentation"] = spec
        if any(r.grade is not None for r in part):
            specs["grading"] = spec
        records += part
    dataset = DATASET_NAMES[formats[0]]
    out = EvalSet.from_records(records, dataset, _split_words(dataset, split, formats[0], root))
    out.specs = specs
    out.info = {"root": str(root),  # as given: a record names no machine's folders
                "format": fmt, "split": split, "fold": None,
                "sources": [DatasetSpec(format=f, root=root, split=split).model_dump(mode="json") for f in formats]}
    return out


def _matching_spec(spec: DatasetSpec, run_specs: list[DatasetSpec], where: str) -> int:
    """Index of the run's source that ``spec`` is (same format and split; same root when ambiguous)."""
    same = [i for i, s in enumerate(run_specs) if s.format == spec.format and s.split == spec.split]
    if len(same) > 1:
        same = [i for i in same if run_specs[i].root.resolve() == spec.root.resolve()]
    if len(same) != 1:
        listed = ", ".join(f"{s.format}:{s.split}:{s.root}" for s in run_specs) or "none"
        raise ConfigError(f"{where}: no single {spec.format} {spec.split} source to take the validation fold of "
                          f"(its sources: {listed})")
    return same[0]


def _val_records(records: list[Record], spec: DatasetSpec, run_specs: list[DatasetSpec], fold: ValFold,
                 where: str) -> list[Record]:
    """The records of ``records`` that fall in the run's validation fold, split as ``training/data.py`` splits
    each source."""
    _matching_spec(spec, run_specs, where)
    _, val = split_records(records, fold.n_folds, fold.val_fold, fold.fold_seed)
    names = {r.name for r in val}
    return [r for r in records if r.name in names]


def restrict_to_val_fold(eval_set: EvalSet, fold: ValFold) -> EvalSet:
    """Keep only the images that a run held out as its validation fold (the same ``split_records`` call with its
    ``data.n_folds``, ``data.val_fold`` and ``data.fold_seed``; ``training.run_folder.read_val_fold`` reads them).

    A task whose run sources are empty (grading for a segmentation-only CE1 / CE2 run) is dropped.

    Raises:
        ConfigError: the evaluation set is not a training split, or the run did not train on this dataset.
    """
    if eval_set.info.get("split") != "train":
        raise ConfigError(f"--val-fold-of selects part of a training split, not the {eval_set.info.get('split')} split")
    where = f"run {fold.run}"
    # A run without X^P (X^I) sources trained no G (grader), so its bundle cannot segment (grade): drop the task.
    seg = grade = []
    if eval_set.segmentation and fold.pixel:
        seg = _val_records(eval_set.segmentation, eval_set.specs["segmentation"], fold.pixel, fold,
                           f"{where} (data.pixel)")
    if eval_set.grading and fold.image:
        grade = _val_records(eval_set.grading, eval_set.specs["grading"], fold.image, fold,
                             f"{where} (data.image)")
    info = {"run": str(fold.run), "n_folds": fold.n_folds, "val_fold": fold.val_fold,
            "fold_seed": fold.fold_seed}
    description = f"validation fold {fold.val_fold} of {fold.n_folds} of {eval_set.description}"
    return replace(eval_set, segmentation=seg, grading=grade, description=description,
                   info={**eval_set.info, "fold": info})
