"""Reader of drcollab's generic layout (written by the synthetic generator, easy to produce by hand)::

    ROOT/
      labels.csv                  header "path,grade[,dme]"; path relative to ROOT; grade 0-4 or empty (unknown);
                                  the optional dme column: risk of macular edema 0-2 or empty (unknown)
      images/<name>.<ext>         any image suffix; <name> (the file stem) is unique
      masks/<LESION>/<name>.png   optional; LESION in MA, HE, EX, SE; 0 background, > 0 lesion

An image has pixel labels iff at least one of its mask files exists; then a missing lesion file means
that lesion is absent. ``labels.csv`` lists every image; files it does not list are not read.
"""

from __future__ import annotations

from pathlib import Path

from drcollab.constants import LESIONS
from drcollab.data.io import IMAGE_SUFFIXES
from drcollab.data.paths import index_files, require_root
from drcollab.data.records import MAX_DME, Record
from drcollab.data.tables import check_unique, parse_grade, read_table
from drcollab.errors import DataError

LABELS_FILE = "labels.csv"


def _mask_files(root: Path, names: set[str]) -> dict[str, dict[str, Path]]:
    """Map lesion -> image name -> mask file; refuses unknown lesion folders and masks without an image."""
    masks_dir = root / "masks"
    found: dict[str, dict[str, Path]] = {lesion: {} for lesion in LESIONS}
    if not masks_dir.is_dir():
        return found
    for folder in sorted(p for p in masks_dir.iterdir() if p.is_dir()):
        if folder.name not in LESIONS:
            raise DataError(folder, f"unknown lesion folder: mask folders must be named one of {', '.join(LESIONS)}")
        for name, path in index_files(folder, (".png",)).items():
            if name not in names:
                raise DataError(path, f"mask has no image named {name!r} in {LABELS_FILE}")
            found[folder.name][name] = path
    return found


def read_generic(root: Path, source: str = "generic") -> list[Record]:
    """Records for every row of ``ROOT/labels.csv``, with masks where the image has any.

    Raises:
        DataError: a missing root or labels file, a labels file without rows, a missing column, a grade outside
            0-4 (DME 0-2), a name used twice, a listed image missing, an unknown lesion folder, or a mask without
            its image.
    """
    root = require_root(root)
    table = root / LABELS_FILE
    rows = read_table(table, ("path", "grade"))
    if not rows:  # before the masks, which would all look orphaned
        raise DataError(table, "labels file has a header but no rows: list each image on a row of its own, "
                        "e.g. images/0001.png,2")
    has_dme = bool(rows) and "dme" in rows[0].values
    check_unique([(Path(row.values["path"]).stem, table, row.number) for row in rows])
    masks = _mask_files(root, {Path(row.values["path"]).stem for row in rows})
    records = []
    for row in rows:
        path = root / row.values["path"]
        grade = parse_grade(row.values["grade"], table, row, top=4, allow_empty=True)
        dme = parse_grade(row.values["dme"], table, row, top=MAX_DME, allow_empty=True,
                          label="macular edema risk") if has_dme else None
        if not path.is_file():
            raise DataError(path, f"image listed in {LABELS_FILE} row {row.number} not found")
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise DataError(path, f"{LABELS_FILE} row {row.number}: not an image suffix, use one of {IMAGE_SUFFIXES}")
        mask_paths = tuple(masks[lesion].get(path.stem) for lesion in LESIONS)
        has_masks = any(p is not None for p in mask_paths)
        records.append(Record(path.stem, path, mask_paths if has_masks else None, grade, source, dme=dme))
    return records
