"""Messidor-2 reader on the real copy (``messidor2_root``) and on tiny constructed tables: ICDR grades, the binary
adjudicated DME as a partial label, ungradable photos left out and reported, exam pairs kept in one fold."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from fake_layouts import write_image, write_text

from drcollab.data.folds import fold_ids
from drcollab.data.messidor2 import exam_pairs, read_messidor2
from drcollab.data.records import ScanReport
from drcollab.data.sources import DatasetSpec, read_records
from drcollab.errors import DataError

HEADER = "id_code,diagnosis,adjudicated_dme,adjudicated_gradable"


def make_messidor2(root: Path, rows: list[str], files: list[str], folder: str = "IMAGES") -> Path:
    for name in files:
        write_image(root / folder / name)
    write_text(root / "messidor_data.csv", "\n".join([HEADER, *rows]) + "\n")
    return root


def test_real_counts(messidor2_root: Path) -> None:
    report = ScanReport()
    records = read_messidor2(messidor2_root, report=report)
    assert len(records) == 872 and report.skipped == []
    assert sorted(Counter(r.grade for r in records).items()) == [(0, 499), (1, 129), (2, 188), (3, 42), (4, 14)]
    # adjudicated DME 0 / 1: "risk 0 or 1" (partial) / risk 2
    assert Counter((r.dme, r.dme_partial) for r in records) == {(None, (0, 1)): 782, (2, None): 90}
    assert {r.grade_scale for r in records} == {"icdr"} and {r.source for r in records} == {"messidor2"}


def test_real_exam_pairs_stay_in_one_fold(messidor2_root: Path) -> None:
    records = read_messidor2(messidor2_root)
    pairs = Counter(r.group for r in records)
    assert len(pairs) == 436 and set(pairs.values()) == {2}
    folds = fold_ids(records, 5, seed=0)
    per_pair: dict[str, set[int]] = {}
    for record, fold in zip(records, folds.tolist(), strict=True):
        per_pair.setdefault(record.group, set()).add(fold)
    assert all(len(f) == 1 for f in per_pair.values())
    sizes = Counter(folds.tolist())
    assert max(sizes.values()) - min(sizes.values()) <= 2  # whole pairs dealt in turn: at most one pair apart


def test_ungradable_rows_are_left_out_and_reported(tmp_path: Path) -> None:
    rows = ["a.jpg,2,1,1", "b.jpg,,,0", "c.jpg,0,0,1", "d.jpg,4,0,1"]
    root = make_messidor2(tmp_path / "m2", rows, ["a.png", "c.JPG", "d.jpg"])  # b's photo is not needed
    report = ScanReport()
    records = read_messidor2(root, report=report)
    assert [(r.name, r.grade, r.dme, r.dme_partial) for r in records] == [
        ("a", 2, 2, None), ("c", 0, None, (0, 1)), ("d", 4, None, (0, 1))]
    assert [p.name for p, _ in report.skipped] == ["b.jpg"] and "ungradable" in report.skipped[0][1]
    assert [r.image_path.name for r in records] == ["a.png", "c.JPG", "d.jpg"]  # matched by stem, any suffix
    # pairs run over every row, the ungradable one too: (a, b), (c, d)
    assert [r.group for r in records] == ["a", "c", "c"]
    assert read_records(DatasetSpec(format="messidor2", root=root), report) == records
    assert report.kept == 3 and len(report.skipped) == 2


def test_exam_pairs_follow_the_sorted_names() -> None:
    assert exam_pairs(["d", "a", "c", "b", "e"]) == {"a": "a", "b": "a", "c": "c", "d": "c", "e": "e"}


def test_renamed_table_and_folder(tmp_path: Path) -> None:
    root = make_messidor2(tmp_path / "m2", ["x.png,1,0,1"], ["x.png"], folder="preprocess")
    (root / "messidor_data.csv").rename(root / "labels.csv")
    spec = DatasetSpec(format="messidor2", root=root, labels="labels.csv", images="preprocess")
    assert [(r.name, r.grade) for r in read_records(spec)] == [("x", 1)]


@pytest.mark.parametrize(
    ("row", "files", "message"),
    [
        ("a.jpg,5,0,1", ["a.jpg"], r"messidor_data.csv: row 2: diagnosis '5' is not an integer in 0-4"),
        ("a.jpg,1,2,1", ["a.jpg"], r"row 2: adjudicated_dme '2' is not an integer in 0-1"),
        ("a.jpg,1,0,yes", ["a.jpg"], r"row 2: adjudicated_gradable 'yes' is not an integer in 0-1"),
        ("a.jpg,1,0,1", [], r"IMAGES/a.jpg: photo listed in messidor_data.csv row 2 not found"),
    ],
)
def test_bad_rows_name_the_file_row_and_value(tmp_path: Path, row: str, files: list[str], message: str) -> None:
    root = make_messidor2(tmp_path / "m2", [row], files)
    (root / "IMAGES").mkdir(exist_ok=True)
    with pytest.raises(DataError, match=message):
        read_messidor2(root)


def test_a_missing_photo_folder_is_named(tmp_path: Path) -> None:
    write_text(tmp_path / "m2" / "messidor_data.csv", HEADER + "\n")
    with pytest.raises(DataError, match="Messidor-2 photo folder not found"):
        read_messidor2(tmp_path / "m2")
