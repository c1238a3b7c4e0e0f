"""Messidor-2 reader: the adjudicated grades of Krause et al. (Ophthalmology 2018) beside the photos::

    ROOT/
      IMAGES/<stem>.<ext>       the photos; any image suffix (copies store .png, .jpg or .JPG): rows match by stem
      messidor_data.csv         id_code, diagnosis, adjudicated_dme, adjudicated_gradable

``diagnosis`` is the DR grade on the ICDR 0-4 scale, the scale of IDRiD and EyePACS (unlike the original
Messidor's own 0-3 scale, :mod:`drcollab.data.messidor`).

``adjudicated_dme`` (0/1) is *referable* diabetic macular edema, hard exudates within one disc diameter of the
macula's centre: IDRiD's risk 2. A 1 is stored as risk 2; a 0 leaves risk 0 or 1 open (exudates away from the
macula are not ruled out), stored as the partial label ``Record.dme_partial = (0, 1)``, whose loss is binary
cross-entropy on P(risk >= 2) (:mod:`drcollab.losses.dme`).

A photo graded ``adjudicated_gradable = 0`` is left out; the reader names it in the caller's :class:`ScanReport`.

Patients: the table names no exam or patient, but the two photos of an exam (one per eye) usually have
neighbouring file names. So each pair of consecutive stems in sorted order (1st and 2nd, 3rd and 4th, ... over
every row, gradable or not) is one :attr:`Record.group`, which keeps both eyes in one validation fold. It is the
best the table allows: a pair that straddles two exams only joins photos that need not be together.
"""

from __future__ import annotations

from pathlib import Path

from drcollab.data.paths import find_child, index_files, require_root, strip_image_suffix
from drcollab.data.records import Record, ScanReport
from drcollab.data.tables import check_unique, parse_grade, read_table
from drcollab.errors import DataError

MESSIDOR2_DEFAULTS = ("messidor_data.csv", "IMAGES")  # (label table, photo folder), relative to the root
COLUMNS = ("id_code", "diagnosis", "adjudicated_dme", "adjudicated_gradable")
DME_LABELS: dict[int, dict[str, object]] = {0: {"dme_partial": (0, 1)}, 1: {"dme": 2}}  # adjudicated_dme -> Record


def exam_pairs(stems: list[str]) -> dict[str, str]:
    """Map stem -> its group, the first stem of its pair of consecutive stems in sorted order."""
    ordered = sorted(stems)
    return {stem: ordered[i - i % 2] for i, stem in enumerate(ordered)}


def read_messidor2(root: Path, labels: str | Path = MESSIDOR2_DEFAULTS[0], images: str | Path = MESSIDOR2_DEFAULTS[1],
                   report: ScanReport | None = None) -> list[Record]:
    """Records of every gradable row of the table: ICDR grade, DME (risk 2 or the partial label), exam pair.

    Args:
        root: Dataset folder; ``labels`` and ``images`` are relative to it (or absolute).
        labels: The adjudication table.
        images: The photo folder (its name's letter case does not matter).
        report: Receives the ungradable photos left out.

    Raises:
        DataError: a missing folder or table, a missing column, a value outside its range (grade 0-4, the two
            flags 0/1), a name listed twice, or a gradable row without its photo.
    """
    root = require_root(root)
    table = root / labels
    folder = Path(images) if Path(images).is_absolute() else find_child(root, str(images), "Messidor-2 photo folder")
    rows = read_table(table, COLUMNS)
    stems = [strip_image_suffix(row.values["id_code"]) for row in rows]
    check_unique([(stem, table, row.number) for stem, row in zip(stems, rows, strict=True)])
    groups = exam_pairs(stems)
    files = index_files(folder)
    records = []
    for stem, row in zip(stems, rows, strict=True):
        if not parse_grade(row.values["adjudicated_gradable"], table, row, top=1, label="adjudicated_gradable"):
            if report is not None:
                report.skip(files.get(stem, folder / row.values["id_code"]), "ungradable (adjudicated_gradable 0)")
            continue
        grade = parse_grade(row.values["diagnosis"], table, row, top=4, label="diagnosis")
        dme = parse_grade(row.values["adjudicated_dme"], table, row, top=1, allow_empty=True, label="adjudicated_dme")
        if stem not in files:
            raise DataError(folder / row.values["id_code"], f"photo listed in {table.name} row {row.number} not found")
        records.append(Record(name=stem, image_path=files[stem], grade=grade, source="messidor2",
                              group=groups[stem], **({} if dme is None else DME_LABELS[dme])))
    return records
