"""EyePACS (Kaggle "Diabetic Retinopathy Detection") reader.

Kaggle ships ``trainLabels.csv`` (columns ``image,level``) beside a ``train/`` folder of
``<image>.jpeg`` files; the test labels were released later as ``retinopathy_solution.csv``
(``image,level,Usage``) for the ``test/`` folder. Grades are on the ICDR 0-4 scale.
"""

from __future__ import annotations

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


def read_eyepacs(root: Path, labels: str | Path = "trainLabels.csv", images: str | Path = "train") -> list[Record]:
    """Records for every row of the labels CSV; images not listed in it are not read.

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
    return graded_records(csv_path, ("image", "level"), folder, suffix=".jpeg", source="eyepacs")
