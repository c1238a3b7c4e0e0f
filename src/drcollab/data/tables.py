"""Label tables (CSV or legacy Excel ``.xls``) read into rows of text, with errors that name file and row.

Real label files are messy: the IDRiD CSV has CRLF endings, a header cell with a trailing space and
trailing empty columns; Messidor ships ``.xls`` sheets whose numbers come back as floats; CSV exports
made by a French Excel use ``;``. All of that is absorbed here so the readers stay short.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from drcollab.data.paths import index_files, strip_image_suffix
from drcollab.data.records import GRADE_SCALES, MAX_DME, Record
from drcollab.errors import DataError


@dataclass(frozen=True)
class Row:
    """One data row: ``number`` is the spreadsheet row number (the header is row 1)."""

    number: int
    values: dict[str, str]


def _cell_text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # xlrd returns every number as float: 2.0 -> "2"
    return str(value).strip()


def _read_csv(path: Path) -> list[tuple[int, list[str]]]:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")  # tolerate a byte-order mark
    except UnicodeDecodeError:
        try:
            text = data.decode("cp1252")  # what Excel on Windows writes, e.g. Messidor's "Lariboisière"
        except UnicodeDecodeError as err:
            raise DataError(path, f"neither UTF-8 nor Windows-1252 text ({err})") from err
    first = text.split("\n", 1)[0]
    delimiter = ";" if ";" in first and "," not in first else ","
    reader = csv.reader(text.splitlines(), delimiter=delimiter)
    try:
        return [(reader.line_num, [c.strip() for c in cells]) for cells in reader]
    except csv.Error as err:
        raise DataError(path, f"malformed CSV at row {reader.line_num}: {err}") from err


def _read_xls(path: Path) -> list[tuple[int, list[str]]]:
    import xlrd  # only Messidor needs it

    try:
        sheet = xlrd.open_workbook(str(path)).sheet_by_index(0)
    except (xlrd.XLRDError, OSError, ValueError, AssertionError) as err:
        raise DataError(path, f"cannot read Excel sheet ({err})") from err
    return [(i + 1, [_cell_text(v) for v in sheet.row_values(i)]) for i in range(sheet.nrows)]


def read_table(path: Path, required: tuple[str, ...]) -> list[Row]:
    """Read a ``.csv`` or ``.xls`` label table whose first row is a header.

    Header cells are stripped of spaces, empty trailing columns and blank rows are dropped.

    Raises:
        DataError: the file is missing or unreadable, or lacks a ``required`` column (the message
            lists the columns found).
    """
    if not path.is_file():
        raise DataError(path, "label file not found")
    raw = _read_xls(path) if path.suffix.lower() == ".xls" else _read_csv(path)
    rows = [(n, cells) for n, cells in raw if any(cells)]
    if not rows:
        raise DataError(path, "label file is empty")
    header = rows[0][1]
    missing = [c for c in required if c not in header]
    if missing:
        found = ", ".join(repr(c) for c in header if c)
        raise DataError(path, f"missing column(s) {', '.join(map(repr, missing))}; found columns: {found}")
    padded = [(n, cells + [""] * (len(header) - len(cells))) for n, cells in rows[1:]]
    return [Row(n, {h: cells[i] for i, h in enumerate(header) if h}) for n, cells in padded]


def parse_grade(text: str, path: Path, row: Row, top: int, allow_empty: bool = False,
                label: str = "grade") -> int | None:
    """Parse a grade cell as an integer in ``0..top`` (``"2.0"`` is accepted as 2).

    Raises:
        DataError: naming the file, the row and the value.
    """
    if text == "" and allow_empty:
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value.is_integer() or not 0 <= value <= top:
        raise DataError(path, f"row {row.number}: {label} {text!r} is not an integer in 0-{top}")
    return int(value)


def check_unique(entries: list[tuple[str, Path, int]]) -> None:
    """Raise on an image name listed twice; ``entries`` holds ``(name, label file, row number)``."""
    seen: dict[str, tuple[Path, int]] = {}
    for name, path, number in entries:
        if name in seen:
            first_path, first_row = seen[name]
            first = f"row {first_row}" if first_path == path else f"{first_path} row {first_row}"
            raise DataError(path, f"duplicate image name {name!r} at row {number} (already at {first})")
        seen[name] = (path, number)


def graded_records(
    table: Path,
    columns: tuple[str, str],
    folder: Path,
    *,
    suffix: str,
    source: str,
    scale: str = "icdr",
    dme_column: str | None = None,
) -> list[Record]:
    """One graded :class:`Record` per row of a label table; files of ``folder`` not listed are not read.

    Args:
        table: CSV or ``.xls`` file.
        columns: Names of the image-name column and the grade column.
        folder: Where the images are; a listed name matches a file stem, with any image suffix.
        suffix: The dataset's usual image suffix, only used to name a missing file.
        source: Tag stored in each record.
        scale: Grading scale, a key of :data:`GRADE_SCALES`.
        dme_column: The risk-of-macular-edema column (0-2), read into ``Record.dme`` when the table has it;
            a table without it gives ``dme=None`` (an older export, or a dataset that does not grade DME).

    Raises:
        DataError: a missing column, a grade outside the scale, a name listed twice, or a missing image.
    """
    name_col, grade_col = columns
    rows = read_table(table, columns)
    has_dme = dme_column is not None and bool(rows) and dme_column in rows[0].values
    names = [strip_image_suffix(row.values[name_col]) for row in rows]
    check_unique([(name, table, row.number) for name, row in zip(names, rows, strict=True)])
    files = index_files(folder)
    records = []
    for name, row in zip(names, rows, strict=True):
        grade = parse_grade(row.values[grade_col], table, row, top=GRADE_SCALES[scale])
        dme = (parse_grade(row.values[dme_column], table, row, top=MAX_DME, allow_empty=True,
                           label="macular edema risk") if has_dme else None)
        if name not in files:
            raise DataError(folder / f"{name}{suffix}", f"image listed in {table.name} row {row.number} not found")
        records.append(Record(name=name, image_path=files[name], grade=grade, source=source, grade_scale=scale,
                              dme=dme))
    return records
