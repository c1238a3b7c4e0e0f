"""Which patient and eye each photo of a ``predict`` run belongs to: a grouping CSV or a file-name pattern.

``--groups CSV``: a CSV with the columns ``photo``, ``patient`` and ``eye`` (any order, other columns ignored).
``photo`` names an image of the run by its id (``predict``'s, e.g. ``train/10_left.jpeg``) or by its path (relative
to the current folder, as the inputs are); ``eye`` is ``left`` or ``right`` (also ``L`` / ``R``, ``OS`` / ``OD``,
any case). ``--group-pattern eyepacs``: the file names are EyePACS's ``<patient>_<left|right>`` (``10_left.jpeg``).

Everything is checked before any photo is predicted, and the first problem is an error naming the file, the line
and the value: a missing column, an empty cell, an unknown eye, a photo that is not among the images found, a photo
listed twice (in one patient or two), a file name the pattern does not read. Images of the run that the CSV does not
name are predicted as usual and listed as ungrouped.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path

from drcollab.errors import DataError

COLUMNS = ("photo", "patient", "eye")
EYE_LABELS = {"left": "left", "l": "left", "os": "left", "right": "right", "r": "right", "od": "right"}
PATTERNS = {"eyepacs": re.compile(r"^(?P<patient>.+)_(?P<eye>left|right)$")}


@dataclass(frozen=True)
class GroupRow:
    """One row of a grouping CSV: its line number and cells (``eye`` already read as ``left`` or ``right``)."""

    line: int
    photo: str
    patient: str
    eye: str


@dataclass(frozen=True)
class Assignment:
    """Each grouped image's ``(patient, eye)`` by image id, and the ids of the images no group names."""

    eyes: dict[str, tuple[str, str]]
    ungrouped: list[str]


def eye_label(value: str) -> str | None:
    """``left`` or ``right`` for a label such as ``Left``, ``R`` or ``OD``; None when it names no eye."""
    return EYE_LABELS.get(value.strip().lower())


def read_groups(path: str | Path) -> list[GroupRow]:
    """The rows of a grouping CSV (see the module docstring).

    Raises:
        DataError: naming the file (and line): unreadable, a missing column, an empty cell, an unknown eye.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(path, f"cannot read the grouping CSV ({err})") from err
    reader = csv.DictReader(text.splitlines())
    header = {(name or "").strip().lower(): name for name in reader.fieldnames or []}
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise DataError(path, f"no column {', '.join(repr(c) for c in missing)}: a grouping CSV needs the columns "
                              f"{', '.join(COLUMNS)} (it has {', '.join(repr(h) for h in header) or 'none'})")
    rows = []
    for line, raw in enumerate(reader, start=2):
        cells = {c: (raw.get(header[c]) or "").strip() for c in COLUMNS}
        empty = [c for c in COLUMNS if not cells[c]]
        if empty:
            raise DataError(path, f"line {line}: empty {', '.join(empty)}: every row needs a photo, a patient and an "
                                  "eye")
        eye = eye_label(cells["eye"])
        if eye is None:
            raise DataError(path, f"line {line}: eye {cells['eye']!r} is not left or right (also L / R, OS / OD)")
        rows.append(GroupRow(line, cells["photo"], cells["patient"], eye))
    if not rows:
        raise DataError(path, "no rows under the header: list one photo per row (photo, patient, eye)")
    return rows


def assign_rows(path: Path, rows: list[GroupRow], images: dict[str, Path]) -> Assignment:
    """Match each row's photo to an image of the run (``images``: id -> path) by id, else by path.

    Raises:
        DataError: naming the CSV and line: a photo not among the images, or one listed twice.
    """
    by_path = {os.path.abspath(p): image_id for image_id, p in images.items()}
    eyes: dict[str, tuple[str, str]] = {}
    lines: dict[str, int] = {}
    for row in rows:
        image_id = row.photo if row.photo in images else by_path.get(os.path.abspath(row.photo))
        if image_id is None:
            example = f" (ids look like {next(iter(images))!r})" if images else ""
            raise DataError(path, f"line {row.line}: photo {row.photo!r} is not among the {len(images)} images found "
                                  f"in the inputs{example}: give its id or its path")
        if image_id in eyes:
            first = eyes[image_id][0]
            where = f"in patient {first!r} (line {lines[image_id]}) and patient {row.patient!r}" \
                if first != row.patient else f"twice (lines {lines[image_id]} and {row.line})"
            raise DataError(path, f"line {row.line}: photo {row.photo!r} is listed {where}: list each photo once")
        eyes[image_id], lines[image_id] = (row.patient, row.eye), row.line
    return Assignment(eyes, sorted(set(images) - set(eyes)))


def assign_pattern(pattern: str, images: dict[str, Path]) -> Assignment:
    """Read each image's patient and eye from its file name with a known pattern (``eyepacs``).

    Raises:
        DataError: naming the first image whose name the pattern does not read.
    """
    regex = PATTERNS[pattern]
    eyes = {}
    for image_id, path in images.items():
        match = regex.match(Path(image_id).stem)
        if match is None:
            raise DataError(path, f"--group-pattern {pattern}: the file name does not read <patient>_<left|right> "
                                  "(e.g. 10_left.jpeg): rename it, or group the photos with --groups CSV")
        eyes[image_id] = (match["patient"], match["eye"])
    return Assignment(eyes, [])


@dataclass(frozen=True)
class Grouping:
    """How a run's photos are grouped into eyes and patients: the rows of a CSV or a file-name pattern."""

    source: str  # the CSV's path, or the pattern's name
    rows: tuple[GroupRow, ...] = ()
    pattern: str | None = None

    @classmethod
    def from_csv(cls, path: str | Path) -> Grouping:
        """Read and check the CSV now (before any prediction); see :func:`read_groups`."""
        return cls(str(path), tuple(read_groups(path)))

    @classmethod
    def from_pattern(cls, pattern: str) -> Grouping:
        if pattern not in PATTERNS:
            raise DataError(pattern, f"unknown --group-pattern: use one of {', '.join(PATTERNS)}")
        return cls(pattern, pattern=pattern)

    def assign(self, images: dict[str, Path]) -> Assignment:
        """Each image's patient and eye (``images``: id -> path); raises DataError as the module docstring says."""
        if self.pattern is not None:
            return assign_pattern(self.pattern, images)
        return assign_rows(Path(self.source), list(self.rows), images)
