"""Tiny fake dataset layouts written into tmp_path (images of a few pixels, written with PIL).

Imported by the tests of this folder as `from fake_layouts import ...` (pytest puts the folder on sys.path).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from drcollab.data.idrid import GRADE_CSVS, LESION_DIRS, SPLIT_DIRS

SIZE = (12, 8)  # (W, H) of every fake image


def write_image(path: Path, size: tuple[int, int] = SIZE, value: int = 90) -> Path:
    """A small RGB image; the format follows the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, value // 2, 20)).save(path)
    return path


def write_mask(path: Path, size: tuple[int, int] = SIZE, palette: bool = True) -> Path:
    """A mask with a 2x3 block set: palette index 1 = red like IDRiD's files, else 8-bit grey 0/255."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.zeros((size[1], size[0]), dtype=np.uint8)  # (H, W)
    arr[2:4, 3:6] = 1
    if palette:
        img = Image.fromarray(arr, mode="P")
        img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    else:
        img = Image.fromarray(arr * 255, mode="L")
    img.save(path)
    return path


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def make_idrid(root: Path, split: str = "train") -> Path:
    """IDRiD layout: 3 segmentation images (IDRiD_02 lacks HE, only IDRiD_01 has SE), 4 graded images."""
    seg = root / "A. Segmentation"
    for i in (1, 2, 3):
        write_image(seg / "1. Original Images" / SPLIT_DIRS[split] / f"IDRiD_0{i}.jpg")
    truth = seg / "2. All Segmentation Groundtruths" / SPLIT_DIRS[split]
    for lesion, folder in LESION_DIRS.items():
        (truth / folder).mkdir(parents=True)
        for i in (1, 2, 3):
            if (lesion, i) != ("HE", 2) and (lesion != "SE" or i == 1):
                write_mask(truth / folder / f"IDRiD_0{i}_{lesion}.tif")
    write_mask(truth / "5. Optic Disc" / "IDRiD_01_OD.tif")
    grading = root / "B. Disease Grading"
    for i in range(1, 5):
        write_image(grading / "1. Original Images" / SPLIT_DIRS[split] / f"IDRiD_00{i}.jpg")
    lines = ["Image name,Retinopathy grade,Risk of macular edema ,,,"]
    lines += [f"IDRiD_00{i},{g},0,,," for i, g in zip(range(1, 5), (0, 4, 2, 2), strict=True)]
    write_text(grading / "2. Groundtruths" / GRADE_CSVS[split], "\r\n".join(lines) + "\r\n")
    return root


def make_eyepacs(root: Path) -> Path:
    """Kaggle layout: trainLabels.csv and three train/<image>.jpeg files."""
    for name in ("10_left", "10_right", "13_left"):
        write_image(root / "train" / f"{name}.jpeg")
    write_text(root / "trainLabels.csv", "image,level\n10_left,0\n10_right,3\n13_left,4\n")
    return root


def make_generic(root: Path) -> Path:
    """Generic layout: a (4 masks, grade 2), b (no SE file, grade unknown), c (grade 4, no masks)."""
    for name in ("a", "b", "c"):
        write_image(root / "images" / f"{name}.png")
    for lesion in ("MA", "HE", "EX", "SE"):
        write_mask(root / "masks" / lesion / "a.png", palette=False)
        if lesion != "SE":
            write_mask(root / "masks" / lesion / "b.png", palette=False)
    write_text(root / "labels.csv", "path,grade\nimages/a.png,2\nimages/b.png,\nimages/c.png,4\n")
    return root


MESSIDOR_HEADER = ["Image name", "Ophthalmologic department", "Retinopathy grade", "Risk of macular edema "]


def write_xls(path: Path, rows: list[list[object]]) -> Path:
    """A legacy Excel sheet like Messidor's (numbers stored as numbers, so xlrd reads floats)."""
    import xlwt

    book = xlwt.Workbook()
    sheet = book.add_sheet("Feuil1")
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            sheet.write(r, c, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(str(path))
    return path


MESSIDOR_GRADES = {  # base -> [(image stem, grade)]
    "Base11": [("20051019_38557_0100_PP", 0), ("20051020_43808_0100_PP", 3)],
    "Base12": [("20051020_63045_0100_PP", 1), ("20051020_63337_0100_PP", 2)],
}


def messidor_dme(grade: int) -> int:
    """The fake sheets' macular edema risk: 0, 1 and 2 all occur."""
    return grade % 3


def make_messidor(root: Path) -> Path:
    """Two bases: Base11 with an .xls sheet, Base12 with a ';'-separated CSV export (French Excel)."""
    for base, graded in MESSIDOR_GRADES.items():
        for stem, _ in graded:
            write_image(root / base / f"{stem}.tif")
    rows = [[f"{stem}.tif", "Lariboisière", grade, messidor_dme(grade)] for stem, grade in MESSIDOR_GRADES["Base11"]]
    write_xls(root / "Base11" / "Annotation_Base11.xls", [MESSIDOR_HEADER, *rows])
    lines = [";".join(MESSIDOR_HEADER)] + [f"{stem}.tif;CHU de Brest;{g};{messidor_dme(g)}"
                                           for stem, g in MESSIDOR_GRADES["Base12"]]
    write_text(root / "Base12" / "Annotation_Base12.csv", "\n".join(lines) + "\n")
    return root
