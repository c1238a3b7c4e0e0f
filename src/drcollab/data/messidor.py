"""Messidor reader: ``Annotation_Base*.xls`` sheets (or CSV exports of them) beside their images.

Messidor ships 12 folders ``BaseXY/``, each with its ``Annotation_BaseXY.xls`` and ``.tif`` images;
``root`` may be one such folder or the folder that holds them. Messidor grades retinopathy on its own
0-3 scale (counts of microaneurysms / haemorrhages and neovascularisation), which does not map onto
the ICDR 0-4 grades, so records carry ``grade_scale="messidor"``. The paper evaluates two binary
tasks on it: referable (grade >= 2) and normal (grade 0), see :func:`messidor_referable` and
:func:`messidor_normal`.
"""

from __future__ import annotations

from pathlib import Path

from drcollab.data.paths import require_root
from drcollab.data.records import Record
from drcollab.data.tables import graded_records
from drcollab.errors import DataError

SHEET_PATTERNS = ("Annotation_Base*.xls", "Annotation_Base*.csv")
COLUMNS = ("Image name", "Retinopathy grade")
DME_COLUMN = "Risk of macular edema"  # 0-2, as IDRiD's


def messidor_referable(grade: int) -> bool:
    """Messidor's referable retinopathy: grade 2 or 3."""
    return grade >= 2


def messidor_normal(grade: int) -> bool:
    """Messidor's normal image: grade 0."""
    return grade == 0


def find_sheets(root: Path) -> list[Path]:
    """Annotation sheets in ``root`` and its direct sub-folders, sorted.

    Raises:
        DataError: when none is found, or when a sheet exists as both ``.xls`` and ``.csv``.
    """
    sheets = sorted(
        path
        for folder in [root, *sorted(p for p in root.iterdir() if p.is_dir())]
        for pattern in SHEET_PATTERNS
        for path in folder.glob(pattern)
        if path.is_file()
    )
    if not sheets:
        expected = "Annotation_Base*.xls or .csv here or in BaseXY/ sub-folders"
        raise DataError(root, f"no Messidor annotation sheet found (expected {expected})")
    stems: dict[Path, Path] = {}
    for sheet in sheets:
        key = sheet.with_suffix("")
        if key in stems:
            raise DataError(sheet, f"the same sheet exists as {stems[key].name} too: keep one of them")
        stems[key] = sheet
    return sheets


def read_messidor(root: Path) -> list[Record]:
    """Records for every row of every annotation sheet, grades on the Messidor 0-3 scale, DME risk 0-2.

    Raises:
        DataError: no sheet, a missing column, a grade outside 0-3, an image name listed twice
            (within or across sheets), or a listed image missing from its sheet's folder.
    """
    root = require_root(root)
    records: list[Record] = []
    sheet_of: dict[str, Path] = {}
    for sheet in find_sheets(root):
        for record in graded_records(sheet, COLUMNS, sheet.parent, suffix=".tif", source="messidor", scale="messidor",
                                     dme_column=DME_COLUMN):
            if record.name in sheet_of:
                raise DataError(sheet, f"duplicate image name {record.name!r}: also listed in {sheet_of[record.name]}")
            sheet_of[record.name] = sheet
            records.append(record)
    return records
