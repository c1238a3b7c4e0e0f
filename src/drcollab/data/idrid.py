"""IDRiD readers: part A (lesion segmentation) and part B (disease grading), official layout.

``root`` is the folder that holds ``A. Segmentation`` and ``B. Disease Grading`` (a part folder
itself is accepted too). Folder and file names are matched ignoring letter case and repeated spaces,
so ``.JPG`` / ``.TIF`` copies read the same. See ``/work/shared/data/README.md`` for the quirks.

IDRiD publishes no patient ids, so every image is a patient of its own for the validation folds (``Record.group``
empty): two photos of one patient can fall in different folds, which nothing in the release lets a reader avoid.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from drcollab.constants import LESIONS
from drcollab.data.paths import find_child, index_files, normalise_name, require_root
from drcollab.data.records import Record
from drcollab.data.tables import graded_records
from drcollab.errors import DataError

Split = Literal["train", "test"]

SEGMENTATION = "A. Segmentation"
GRADING = "B. Disease Grading"
SPLIT_DIRS: dict[str, str] = {"train": "a. Training Set", "test": "b. Testing Set"}
LESION_DIRS: dict[str, str] = {
    "MA": "1. Microaneurysms",
    "HE": "2. Haemorrhages",
    "EX": "3. Hard Exudates",
    "SE": "4. Soft Exudates",
}  # "5. Optic Disc" is not a lesion and is ignored
GRADE_CSVS: dict[str, str] = {
    "train": "a. IDRiD_Disease Grading_Training Labels.csv",
    "test": "b. IDRiD_Disease Grading_Testing Labels.csv",
}
MASK_SUFFIXES = (".tif", ".tiff")
DME_COLUMN = "Risk of macular edema"  # the CSV's header cell has a trailing space; read_table strips it


def _part(root: Path, name: str) -> Path:
    root = require_root(root)
    return root if normalise_name(root.name) == normalise_name(name) else find_child(root, name, "IDRiD part")


def _split_dir(parent: Path, split: str) -> Path:
    if split not in SPLIT_DIRS:
        raise DataError(parent, f"unknown split {split!r}, use 'train' or 'test'")
    return find_child(parent, SPLIT_DIRS[split], f"IDRiD {split!r} split")


def _images(folder: Path) -> dict[str, Path]:
    images = index_files(folder)
    if not images:
        raise DataError(folder, "no images found")
    return images


def _lesion_masks(folder: Path, lesion: str, images: dict[str, Path]) -> dict[str, Path]:
    """Map image name -> mask file for one lesion folder (``IDRiD_01_MA.tif`` -> ``IDRiD_01``)."""
    masks: dict[str, Path] = {}
    tag = f"_{lesion}".lower()
    for stem, path in index_files(folder, MASK_SUFFIXES).items():
        if not stem.lower().endswith(tag):
            raise DataError(path, f"unexpected file name in the {lesion} folder: expected <image>_{lesion}.tif")
        name = stem[: -len(tag)]
        if name not in images:
            raise DataError(path, f"mask has no image {name!r} in the images folder")
        masks[name] = path
    return masks


def read_idrid_segmentation(root: Path, split: Split = "train") -> list[Record]:
    """Records of IDRiD part A: every image with its 4 lesion masks (``None`` = lesion absent), no grade.

    Raises:
        DataError: a missing part, split or lesion folder (named), or a mask file without its image.
    """
    part = _part(root, SEGMENTATION)
    images = _images(_split_dir(find_child(part, "1. Original Images"), split))
    truth = _split_dir(find_child(part, "2. All Segmentation Groundtruths"), split)
    per_lesion = [_lesion_masks(find_child(truth, LESION_DIRS[les], f"{les} masks"), les, images) for les in LESIONS]
    return [
        Record(name=name, image_path=path, mask_paths=tuple(m.get(name) for m in per_lesion), source="idrid-seg")
        for name, path in images.items()
    ]


def read_idrid_grading(root: Path, split: Split = "train") -> list[Record]:
    """Records of IDRiD part B: one per row of the split's label CSV, with its DR grade 0-4 and DME risk 0-2.

    Raises:
        DataError: a missing part, split folder or CSV, a missing column, a grade outside 0-4, a name
            listed twice, or a listed image without its file.
    """
    part = _part(root, GRADING)
    folder = _split_dir(find_child(part, "1. Original Images"), split)
    csv_path = find_child(find_child(part, "2. Groundtruths"), GRADE_CSVS[split], f"IDRiD {split!r} label file", False)
    return graded_records(csv_path, ("Image name", "Retinopathy grade"), folder, suffix=".jpg", source="idrid-grade",
                          dme_column=DME_COLUMN)
