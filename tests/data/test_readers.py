"""EyePACS, Messidor, generic readers, the DatasetSpec dispatch and the image scan, on tiny layouts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from fake_layouts import (
    MESSIDOR_GRADES,
    MESSIDOR_HEADER,
    make_eyepacs,
    make_generic,
    make_idrid,
    make_messidor,
    messidor_dme,
    write_image,
    write_text,
)

from drcollab.config import load_config
from drcollab.data.eyepacs import read_eyepacs
from drcollab.data.generic import read_generic
from drcollab.data.idrid import read_idrid_grading
from drcollab.data.io import load_sample
from drcollab.data.messidor import messidor_normal, messidor_referable, read_messidor
from drcollab.data.records import Record
from drcollab.data.scan import scan_images
from drcollab.data.sources import DatasetSpec, read_records
from drcollab.errors import ConfigError, DataError


def test_eyepacs_default_layout(tmp_path: Path) -> None:
    root = make_eyepacs(tmp_path / "eyepacs")
    records = read_eyepacs(root)
    assert [(r.name, r.grade, r.image_path.name) for r in records] == [
        ("10_left", 0, "10_left.jpeg"),
        ("10_right", 3, "10_right.jpeg"),
        ("13_left", 4, "13_left.jpeg"),
    ]
    assert all(r.source == "eyepacs" and r.grade_scale == "icdr" and r.mask_paths is None for r in records)


def test_eyepacs_custom_paths_and_unlisted_images(tmp_path: Path) -> None:
    root = tmp_path / "kaggle"
    write_image(root / "pre" / "512" / "1_left.png")
    write_image(root / "pre" / "512" / "2_left.png")  # not in the CSV: not read
    write_text(root / "labels" / "mine.csv", "image,level\r\n1_left,2\r\n")
    records = read_eyepacs(root, labels="labels/mine.csv", images="pre/512")
    assert [(r.name, r.grade, r.image_path.name) for r in records] == [("1_left", 2, "1_left.png")]


def test_messidor_xls_and_csv(tmp_path: Path) -> None:
    records = read_messidor(make_messidor(tmp_path / "Messidor"))
    expected = [(stem, grade) for graded in MESSIDOR_GRADES.values() for stem, grade in graded]
    assert [(r.name, r.grade) for r in records] == expected
    assert all(r.grade_scale == "messidor" and r.source == "messidor" for r in records)
    assert [r.dme for r in records] == [messidor_dme(g) for _, g in expected]  # xls floats and CSV text alike
    assert [r.image_path.parent.name for r in records] == ["Base11", "Base11", "Base12", "Base12"]
    # A Windows Excel export (cp1252) reads too.
    sheet = tmp_path / "Messidor" / "Base12" / "Annotation_Base12.csv"
    sheet.write_bytes(sheet.read_text().replace("CHU de Brest", "Lariboisière").encode("cp1252"))
    assert [r.grade for r in read_messidor(tmp_path / "Messidor")] == [0, 3, 1, 2]
    # One BaseXY folder as the root reads that base only.
    assert [r.grade for r in read_messidor(tmp_path / "Messidor" / "Base11")] == [0, 3]


def test_messidor_binary_labels() -> None:
    assert [messidor_referable(g) for g in range(4)] == [False, False, True, True]
    assert [messidor_normal(g) for g in range(4)] == [True, False, False, False]


def test_record_checks_grade_against_its_scale(tmp_path: Path) -> None:
    Record("a", tmp_path / "a.tif", grade=3, grade_scale="messidor")
    with pytest.raises(ValueError, match="grade 4 outside the messidor scale 0-3"):
        Record("a", tmp_path / "a.tif", grade=4, grade_scale="messidor")
    with pytest.raises(ValueError, match="unknown grade scale 'kaggle'"):
        Record("a", tmp_path / "a.tif", grade=1, grade_scale="kaggle")


def test_record_checks_its_partial_edema_label(tmp_path: Path) -> None:
    assert Record("a", tmp_path / "a.jpg", dme_partial=(0, 1)).dme_target == 3
    assert Record("a", tmp_path / "a.jpg", dme=2).dme_target == 2 and Record("a", tmp_path / "a.jpg").dme_target == -1
    with pytest.raises(ValueError, match=r"partial macular edema label \(0, 2\) is not one of"):
        Record("a", tmp_path / "a.jpg", dme_partial=(0, 2))
    with pytest.raises(ValueError, match="both an exact macular edema risk and a partial label"):
        Record("a", tmp_path / "a.jpg", dme=1, dme_partial=(1, 2))


def test_generic_masks_and_grades(tmp_path: Path) -> None:
    root = make_generic(tmp_path / "generic")
    a, b, c = read_generic(root)
    assert (a.name, a.grade, b.grade, c.grade) == ("a", 2, None, 4)
    assert [p.name for p in a.mask_paths] == ["a.png"] * 4
    assert [p is not None for p in b.mask_paths] == [True, True, True, False]  # missing SE file = SE absent
    assert c.mask_paths is None  # no mask file at all: no pixel labels
    sample = load_sample(b)
    assert sample.masks.shape == (4, 8, 12)
    expected = np.zeros((8, 12), dtype=bool)
    expected[2:4, 3:6] = True
    np.testing.assert_array_equal(sample.masks[0], expected)
    assert not sample.masks[3].any()


def test_spec_dispatches_to_every_format(tmp_path: Path) -> None:
    roots = {
        "idrid-seg": make_idrid(tmp_path / "IDRiD"),
        "idrid-grade": tmp_path / "IDRiD",
        "eyepacs": make_eyepacs(tmp_path / "eyepacs"),
        "messidor": make_messidor(tmp_path / "Messidor"),
        "generic": make_generic(tmp_path / "generic"),
    }
    counts = {fmt: len(read_records(DatasetSpec(format=fmt, root=root))) for fmt, root in roots.items()}
    assert counts == {"idrid-seg": 3, "idrid-grade": 4, "eyepacs": 3, "messidor": 4, "generic": 3}


def test_spec_eyepacs_test_split_defaults(tmp_path: Path) -> None:
    root = tmp_path / "eyepacs"
    write_image(root / "test" / "1_left.jpeg")
    write_text(root / "retinopathy_solution.csv", "image,level,Usage\n1_left,1,Private\n")
    records = read_records(DatasetSpec(format="eyepacs", root=root, split="test"))
    assert [(r.name, r.grade) for r in records] == [("1_left", 1)]


def test_spec_from_yaml_and_refusals(tmp_path: Path) -> None:
    path = write_text(tmp_path / "ds.yaml", "format: eyepacs\nroot: data/kaggle\nlabels: a.csv\n")
    spec = load_config(DatasetSpec, path)
    assert (spec.root, spec.split, spec.labels, spec.images) == (Path("data/kaggle"), "train", Path("a.csv"), None)
    with pytest.raises(ConfigError, match="format 'generic' has no splits"):
        load_config(DatasetSpec, overrides=["format=generic", "root=x", "split=test"])
    with pytest.raises(ConfigError, match="apply to formats eyepacs, messidor2 only, not 'messidor'"):
        load_config(DatasetSpec, overrides=["format=messidor", "root=x", "images=y"])
    with pytest.raises(ConfigError, match="format"):
        load_config(DatasetSpec, overrides=["format=aptos", "root=x"])


def test_scan_images_keeps_images_and_reports_the_rest(tmp_path: Path) -> None:
    a = write_image(tmp_path / "in" / "a.jpg")
    b = write_image(tmp_path / "in" / "sub" / "B.PNG")
    write_text(tmp_path / "in" / "notes.txt", "hello")
    write_text(tmp_path / "in" / "fake.jpg", "not an image")
    write_image(tmp_path / "in" / ".cache" / "c.png")
    single = write_image(tmp_path / "other.tif")
    files, report = scan_images([tmp_path / "in", single, a])
    assert files == sorted([a, b, single])
    assert report.kept == 3
    assert {(p.name, reason) for p, reason in report.skipped} == {
        ("notes.txt", "not an image suffix (.txt)"),
        ("fake.jpg", "unreadable image header"),
        ("c.png", "hidden file or folder"),
        ("a.jpg", "listed twice"),
    }
    assert report.summary().startswith("kept 3 images, skipped 4")


def test_a_macular_edema_risk_outside_0_2_names_file_and_row(tmp_path: Path) -> None:
    root = make_messidor(tmp_path / "Messidor")
    sheet = root / "Base12" / "Annotation_Base12.csv"
    sheet.write_text(sheet.read_text().replace(";2;2", ";2;7"))
    with pytest.raises(DataError, match=r"Annotation_Base12.csv.*row 3: macular edema risk '7' is not an integer"):
        read_messidor(root)


def test_a_table_without_the_edema_column_gives_unknown_dme(tmp_path: Path) -> None:
    root = make_idrid(tmp_path / "IDRiD")
    csv = next((root / "B. Disease Grading" / "2. Groundtruths").iterdir())
    csv.write_text("Image name,Retinopathy grade\r\n" + "".join(f"IDRiD_00{i},1\r\n" for i in range(1, 5)))
    assert [r.dme for r in read_idrid_grading(root)] == [None] * 4


def test_messidor_table_with_the_official_distribution_reads_its_counts(tmp_path: Path) -> None:
    """Messidor's 1,200 images: retinopathy grades 546 / 153 / 247 / 254, edema risk 974 / 75 / 151. The real
    tables are held back; a table with that distribution must read back with it, DME included."""
    grades = [0] * 546 + [1] * 153 + [2] * 247 + [3] * 254
    dme = [0] * 974 + [1] * 75 + [2] * 151
    base = tmp_path / "Messidor" / "Base11"
    lines = [";".join(MESSIDOR_HEADER)]
    for i, (g, d) in enumerate(zip(grades, dme, strict=True)):
        write_image(base / f"img{i:04d}.tif")
        lines.append(f"img{i:04d}.tif;CHU de Brest;{g};{d}")
    write_text(base / "Annotation_Base11.csv", "\n".join(lines) + "\n")
    records = read_messidor(tmp_path / "Messidor")
    assert Counter(r.grade for r in records) == {0: 546, 1: 153, 2: 247, 3: 254}
    assert Counter(r.dme for r in records) == {0: 974, 1: 75, 2: 151}
