"""Every kind of bad dataset input raises DataError naming the file (and the value where one is at fault)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from fake_layouts import make_eyepacs, make_generic, make_idrid, make_messidor, write_image, write_text, write_xls
from PIL import Image

from drcollab.data.eyepacs import read_eyepacs
from drcollab.data.generic import read_generic
from drcollab.data.idrid import read_idrid_grading, read_idrid_segmentation
from drcollab.data.io import load_sample
from drcollab.data.messidor import read_messidor
from drcollab.data.sources import DatasetSpec, read_records
from drcollab.errors import DataError

SEG = Path("A. Segmentation")
GRADE_CSV = Path("B. Disease Grading/2. Groundtruths/a. IDRiD_Disease Grading_Training Labels.csv")


def raises_naming(path: Path, *fragments: str) -> pytest.RaisesContext:
    """Expect a DataError whose message starts with ``path`` and contains every fragment, in order."""
    return pytest.raises(DataError, match="^" + re.escape(str(path)) + ": .*" + ".*".join(map(re.escape, fragments)))


@pytest.mark.parametrize("fmt", ["idrid-seg", "idrid-grade", "eyepacs", "messidor", "generic"])
def test_missing_root(tmp_path: Path, fmt: str) -> None:
    with raises_naming(tmp_path / "nowhere", "dataset root folder not found"):
        read_records(DatasetSpec(format=fmt, root=tmp_path / "nowhere"))


@pytest.mark.parametrize(
    ("reader", "part"), [(read_idrid_segmentation, "A. Segmentation"), (read_idrid_grading, "B. Disease Grading")]
)
def test_missing_split_names_the_expected_folder(tmp_path: Path, reader, part: str) -> None:
    root = make_idrid(tmp_path / "IDRiD", "train")
    expected = root / part / "1. Original Images" / "b. Testing Set"
    with raises_naming(expected, "IDRiD 'test' split not found (expected a folder named 'b. Testing Set'"):
        reader(root, "test")


def test_missing_part_and_lesion_folder(tmp_path: Path) -> None:
    with raises_naming(tmp_path / "B. Disease Grading", "IDRiD part not found"):
        read_idrid_grading(tmp_path)
    root = make_idrid(tmp_path / "IDRiD")
    truth = root / SEG / "2. All Segmentation Groundtruths" / "a. Training Set"
    for mask in (truth / "4. Soft Exudates").iterdir():
        mask.unlink()
    (truth / "4. Soft Exudates").rmdir()
    with raises_naming(truth / "4. Soft Exudates", "SE masks not found"):
        read_idrid_segmentation(root)


def test_idrid_mask_without_image(tmp_path: Path) -> None:
    root = make_idrid(tmp_path / "IDRiD")
    (root / SEG / "1. Original Images" / "a. Training Set" / "IDRiD_03.jpg").unlink()
    orphan = (
        root / SEG / "2. All Segmentation Groundtruths" / "a. Training Set" / "1. Microaneurysms" / "IDRiD_03_MA.tif"
    )
    with raises_naming(orphan, "mask has no image 'IDRiD_03'"):
        read_idrid_segmentation(root)


def _unlink(path: Path) -> Path:
    path.unlink()
    return path


def test_listed_image_missing(tmp_path: Path) -> None:
    root = make_idrid(tmp_path / "IDRiD")
    gone = _unlink(root / "B. Disease Grading" / "1. Original Images" / "a. Training Set" / "IDRiD_003.jpg")
    with raises_naming(gone, "listed in a. IDRiD_Disease Grading_Training Labels.csv row 4 not found"):
        read_idrid_grading(root)
    root = make_eyepacs(tmp_path / "eyepacs")
    gone = _unlink(root / "train" / "10_right.jpeg")
    with raises_naming(gone, "listed in trainLabels.csv row 3 not found"):
        read_eyepacs(root)
    root = make_messidor(tmp_path / "Messidor")
    gone = _unlink(root / "Base11" / "20051020_43808_0100_PP.tif")
    with raises_naming(gone, "listed in Annotation_Base11.xls row 3 not found"):
        read_messidor(root)
    root = make_generic(tmp_path / "generic")
    gone = _unlink(root / "images" / "c.png")
    with raises_naming(gone, "listed in labels.csv row 4 not found"):
        read_generic(root)


def test_truncated_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "cut.jpg"
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path, quality=95)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    root = tmp_path / "eyepacs"
    write_text(root / "trainLabels.csv", "image,level\ncut,1\n")
    record = read_eyepacs(root, images=tmp_path)[0]  # reading labels is cheap: pixels are decoded on load
    with raises_naming(path, "cannot decode image", "truncated"):
        load_sample(record)


def test_text_file_renamed_jpg(tmp_path: Path) -> None:
    root = make_generic(tmp_path / "generic")
    fake = write_text(root / "images" / "d.jpg", "this is not a JPEG")
    with open(root / "labels.csv", "a") as f:
        f.write("images/d.jpg,1\n")
    record = read_generic(root)[-1]
    with raises_naming(fake, "cannot decode image", "cannot identify image file"):
        load_sample(record)


def test_mask_size_differs_from_image(tmp_path: Path) -> None:
    root = make_idrid(tmp_path / "IDRiD")
    record = read_idrid_segmentation(root)[0]
    write_image(record.image_path, size=(20, 8))
    with raises_naming(record.mask_paths[0], "mask size 12x8 differs from its image IDRiD_01.jpg (20x8)"):
        load_sample(record)


def test_grade_outside_scale(tmp_path: Path) -> None:
    root = make_idrid(tmp_path / "IDRiD")
    csv = root / GRADE_CSV
    csv.write_text(csv.read_text().replace("IDRiD_002,4,", "IDRiD_002,5,"))
    with raises_naming(csv, "row 3: grade '5' is not an integer in 0-4"):
        read_idrid_grading(root)
    root = make_eyepacs(tmp_path / "eyepacs")
    write_text(root / "trainLabels.csv", "image,level\n10_left,0\n10_right,-1\n")
    with raises_naming(root / "trainLabels.csv", "row 3: grade '-1' is not an integer in 0-4"):
        read_eyepacs(root)
    root = make_generic(tmp_path / "generic")
    write_text(root / "labels.csv", "path,grade\nimages/a.png,2.5\nimages/b.png,\nimages/c.png,1\n")
    with raises_naming(root / "labels.csv", "row 2: grade '2.5' is not an integer in 0-4"):
        read_generic(root)


def test_messidor_grade_4_is_outside_its_scale(tmp_path: Path) -> None:
    root = make_messidor(tmp_path / "Messidor")
    sheet = write_xls(root / "Base11" / "Annotation_Base11.xls", [["Image name", "Retinopathy grade"], ["x.tif", 4]])
    with raises_naming(sheet, "row 2: grade '4' is not an integer in 0-3"):
        read_messidor(root)


def test_duplicate_names(tmp_path: Path) -> None:
    root = make_eyepacs(tmp_path / "eyepacs")
    write_text(root / "trainLabels.csv", "image,level\n10_left,0\n10_right,1\n10_left,2\n")
    with raises_naming(root / "trainLabels.csv", "duplicate image name '10_left' at row 4 (already at row 2)"):
        read_eyepacs(root)
    root = make_generic(tmp_path / "generic")
    write_image(root / "images" / "a.jpg")
    write_text(root / "labels.csv", "path,grade\nimages/a.png,1\nimages/a.jpg,2\n")
    with raises_naming(root / "labels.csv", "duplicate image name 'a' at row 3"):
        read_generic(root)
    root = make_messidor(tmp_path / "Messidor")
    stem = "20051019_38557_0100_PP"  # a Base11 image listed again in Base12
    write_image(root / "Base12" / f"{stem}.tif")
    sheet = write_text(root / "Base12" / "Annotation_Base12.csv", f"Image name,Retinopathy grade\n{stem}.tif,1\n")
    with raises_naming(sheet, f"duplicate image name {stem!r}: also listed in", "Annotation_Base11.xls"):
        read_messidor(root)


def test_missing_column_lists_the_columns_found(tmp_path: Path) -> None:
    root = make_idrid(tmp_path / "IDRiD")
    csv = root / GRADE_CSV
    csv.write_text("Image name,DR grade,Risk of macular edema \r\nIDRiD_001,1,0\r\n")
    expected = "missing column(s) 'Retinopathy grade'; found columns: 'Image name', 'DR grade', 'Risk of macular edema'"
    with raises_naming(csv, expected):
        read_idrid_grading(root)
    root = make_eyepacs(tmp_path / "eyepacs")
    write_text(root / "trainLabels.csv", "id_code,diagnosis\n10_left,0\n")
    with raises_naming(root / "trainLabels.csv", "missing column(s) 'image', 'level'; found columns: 'id_code'"):
        read_eyepacs(root)


def test_generic_layout_mistakes(tmp_path: Path) -> None:
    root = make_generic(tmp_path / "generic")
    odd = write_image(root / "masks" / "OD" / "a.png")
    with raises_naming(odd.parent, "unknown lesion folder", "MA, HE, EX, SE"):
        read_generic(root)
    odd.unlink()
    odd.parent.rmdir()
    orphan = write_image(root / "masks" / "HE" / "a_HE.png")
    with raises_naming(orphan, "mask has no image named 'a_HE' in labels.csv"):
        read_generic(root)


def test_a_generic_labels_file_with_only_a_header_is_named_not_its_masks(tmp_path: Path) -> None:
    root = make_generic(tmp_path / "generic")
    labels = write_text(root / "labels.csv", "path,grade\n")
    with raises_naming(labels, "labels file has a header but no rows"):
        read_generic(root)


def test_unreadable_or_ambiguous_label_files(tmp_path: Path) -> None:
    root = make_messidor(tmp_path / "Messidor")
    both = write_text(root / "Base11" / "Annotation_Base11.csv", "Image name,Retinopathy grade\n")
    with raises_naming(both.with_suffix(".xls"), "the same sheet exists as Annotation_Base11.csv too"):
        read_messidor(root)
    both.unlink()
    fake = write_text(root / "Base11" / "Annotation_Base11.xls", "not a spreadsheet")
    with raises_naming(fake, "cannot read Excel sheet"):
        read_messidor(root)
    with raises_naming(tmp_path, "no Messidor annotation sheet found"):
        read_messidor(tmp_path)
    root = make_eyepacs(tmp_path / "eyepacs")
    (root / "trainLabels.csv").write_bytes(b"image,level\n\x81\x8d,1\n")  # bytes undefined in Windows-1252
    with raises_naming(root / "trainLabels.csv", "neither UTF-8 nor Windows-1252 text"):
        read_eyepacs(root)
    write_image(root / "train" / "10_left.png")
    (root / "trainLabels.csv").write_text("image,level\n10_left,0\n")
    with raises_naming(root / "train" / "10_left.png", "two files share the name '10_left'"):
        read_eyepacs(root)
