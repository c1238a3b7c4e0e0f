"""EyePACS (Kaggle "Diabetic Retinopathy Detection") reader.

Kaggle ships ``trainLabels.csv`` (columns ``image,level``) beside a ``train/`` folder of
``<image>.jpeg`` files; the test labels were released later as ``retinopathy_solution.csv``
(``image,level,Usage``) for the ``test/`` folder. Grades are on the ICDR 0-4 scale.

Images are named ``<patient>_<left|right>``: a record's :attr:`Record.group` is its patient, so validation folds keep
both eyes together (a name of another form is a patient of its own).
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from drcollab.data.paths import require_root
from drcollab.data.records import Record
from drcollab.data.tables import graded_records
from drcollab.errors import DataError

# Default (labels CSV, image folder) of each split, relative to the root.
EYEPACS_DEFAULTS: dict[str, tuple[str, str]] = {
    "train": ("trainLabels.csv", "train"),
    "test": ("retinopathy_solution.csv", "test"),
}
EYE = re.compile(r"(?P<patient>.+)_(?:left|right)", re.IGNORECASE)


def eyepacs_patient(name: str) -> str:
    """``"10_left"`` -> ``"10"``; ``""`` (its own patient) for a name that is not ``<patient>_<left|right>``."""
    match = EYE.fullmatch(name)
    return match["patient"] if match else ""


def read_eyepacs(root: Path, labels: str | Path = "trainLabels.csv", images: str | Path = "train") -> list[Record]:
    """Records for every row of the labels CSV, grouped by patient; images not listed in it are not read.

    Args:
        root: Dataset folder; ``labels`` and ``images`` are relative to it (or absolute).
        labels: The CSV with columns ``image`` and ``level``.
        images: Folder of ``<image>.jpeg`` files (any image suffix, any case, is accepted).

    Raises:
        DataError: a missing folder or CSV, a missing column, a level outside 0-4, a name listed
            twice, or a listed image without its file.
    """
    root = require_root(root)
    csv_path, folder = root / labels, root / images
    if not folder.is_dir():
        raise DataError(folder, "EyePACS image folder not found")
    records = graded_records(csv_path, ("image", "level"), folder, suffix=".jpeg", source="eyepacs")
    return [replace(r, group=eyepacs_patient(r.name)) for r in records]
