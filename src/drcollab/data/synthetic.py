"""Procedural synthetic fundus photographs with lesion masks and DR grades: the no-download dataset.

Image ``i`` of a set depends only on ``(seed, i)``, so a set of 10 is a prefix of a set of 200.
Target grades cycle through shuffled blocks of 10 (three 0, one 1, three 2, two 3, one 4: close to
IDRiD's 134/20/136/74/49 but every grade occurs in any 10 consecutive images). The lesions follow
the grade (see :func:`~drcollab.data.synthetic_lesions.sample_burden`); a small, deterministic
fraction of grade labels is then moved one step to mimic grader disagreement. The risk of macular edema
(DME 0-2) is read off the painted hard exudates as IDRiD defines it (see
:func:`~drcollab.data.synthetic_lesions.dme_risk`), without label noise.

Drawing order: retina, macula, disc, vessels, neovascular tufts, lesions, camera effects
(:mod:`~drcollab.data.synthetic_anatomy`, :mod:`~drcollab.data.synthetic_vessels`,
:mod:`~drcollab.data.synthetic_lesions`).
"""

from __future__ import annotations

import csv
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from drcollab.constants import LESIONS, NUM_GRADES
from drcollab.data.synthetic_anatomy import (
    EyeGeometry,
    finish,
    paint_disc,
    paint_retina,
    paint_vessel_layers,
    sample_geometry,
)
from drcollab.data.synthetic_lesions import Burden, Lesion, dme_risk, paint_lesions, sample_burden
from drcollab.data.synthetic_vessels import draw_walks, neovascular_tufts, vessel_tree
from drcollab.errors import DataError
from drcollab.viz import contact_sheet, overlay_masks, save_png

DEFAULT_LABEL_NOISE = 0.05
MIN_SIZE = 64
GRADE_BLOCK = (0, 0, 0, 1, 2, 2, 2, 3, 3, 4)  # one shuffled block per 10 images
_SCHEDULE, _IMAGE, _NOISE = 0, 1, 2  # independent random streams per (seed, index)


@dataclass(frozen=True)
class SyntheticFundus:
    """One generated photograph. Unpacks as ``image, masks, grade = generate_fundus(...)``.

    Attributes:
        image: ``(S, S, 3)`` uint8 RGB.
        masks: ``(L, S, S)`` bool in :data:`LESIONS` order; exactly the pixels painted as each lesion.
        grade: The grade label (after label noise).
        true_grade: The grade the lesions were drawn for.
        dme: Risk of macular edema 0-2 from the hard exudates' distance to the fovea (no label noise).
        lesions: Every painted lesion primitive (type, centre, radius).
        burden: The lesion counts that were drawn.
        geometry: FOV, disc and fovea positions.
    """

    image: np.ndarray
    masks: np.ndarray
    grade: int
    true_grade: int
    dme: int
    lesions: tuple[Lesion, ...]
    burden: Burden
    geometry: EyeGeometry

    def __iter__(self) -> Iterator[object]:
        return iter((self.image, self.masks, self.grade))


def _check(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")


def target_grade(seed: int, index: int) -> int:
    """The grade image ``index`` is drawn for: its slot in a shuffled :data:`GRADE_BLOCK`."""
    block, slot = divmod(index, len(GRADE_BLOCK))
    order = np.random.default_rng([seed, block, _SCHEDULE]).permutation(len(GRADE_BLOCK))
    return GRADE_BLOCK[order[slot]]


def noisy_label(seed: int, index: int, grade: int, label_noise: float) -> int:
    """With probability ``label_noise`` move the grade one step up or down (inwards at 0 and 4)."""
    rng = np.random.default_rng([seed, index, _NOISE])
    flip, up = rng.random() < label_noise, rng.random() < 0.5
    if not flip:
        return grade
    if grade == 0 or (up and grade < NUM_GRADES - 1):
        return grade + 1
    return grade - 1


def generate_fundus(
    seed: int, size: int = 512, index: int = 0, grade: int | None = None, label_noise: float = DEFAULT_LABEL_NOISE
) -> SyntheticFundus:
    """Render image ``index`` of the synthetic set ``seed``.

    Args:
        seed: Set seed (>= 0).
        size: Side of the square image in pixels (>= 64).
        index: Image number within the set (>= 0).
        grade: Force the drawn grade; default: the schedule's :func:`target_grade`.
        label_noise: Probability that the returned label is one grade off.
    """
    _check("seed", seed, 0, np.inf)
    _check("index", index, 0, np.inf)
    _check("size", size, MIN_SIZE, 8192)
    _check("label_noise", label_noise, 0.0, 1.0)
    true_grade = target_grade(seed, index) if grade is None else grade
    _check("grade", true_grade, 0, NUM_GRADES - 1)
    rng = np.random.default_rng([seed, index, _IMAGE])
    geo = sample_geometry(rng, size)
    burden = sample_burden(rng, true_grade)
    image = paint_retina(rng, geo)  # (S, S, 3) float32, before illumination
    paint_disc(rng, geo, image)
    veins, arteries = vessel_tree(rng, geo)
    veins += neovascular_tufts(rng, geo, burden.nv_tufts)
    paint_vessel_layers(image, draw_walks(veins, size), draw_walks(arteries, size))
    masks, lesions = paint_lesions(rng, geo, burden, image)
    pixels = finish(rng, geo, image)
    label = noisy_label(seed, index, true_grade, label_noise)
    return SyntheticFundus(pixels, masks, label, true_grade, dme_risk(masks, geo), tuple(lesions), burden, geo)


def image_name(index: int) -> str:
    """File stem of image ``index`` (fixed width, so names sort in index order up to 99,999)."""
    return f"synth_{index:05d}"


def pick_masked(grades: list[int], pixel_fraction: float) -> set[int]:
    """Indices of the images that carry masks: evenly spaced over the images sorted by grade."""
    n = len(grades)
    k = round(pixel_fraction * n)
    k = max(k, 1) if pixel_fraction > 0 and n else k
    by_grade = sorted(range(n), key=lambda i: (grades[i], i))
    return {by_grade[int((j + 0.5) * n / k)] for j in range(k)}


def _prepare(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise DataError(out, "exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise DataError(out, "folder is not empty; choose a new one or pass overwrite=True (--overwrite)")
        (out / "labels.csv").unlink(missing_ok=True)  # first, so an interrupted rewrite lists nothing stale
        for sub in ("images", "masks"):
            shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)


def write_synthetic(
    out: str | Path, n: int, size: int = 512, seed: int = 0, pixel_fraction: float = 1.0,
    label_noise: float = DEFAULT_LABEL_NOISE, overwrite: bool = False, progress: bool = True,
) -> Path:
    """Write ``n`` synthetic images in the generic layout (``labels.csv``, ``images/``, ``masks/<LESION>/``).

    Every image gets a grade and a DME risk; ``round(pixel_fraction * n)`` of them (at least one when the fraction
    is positive), spread evenly over the grades, also get all four masks. ``labels.csv`` is written
    last, through a temporary file, so an interrupted run never lists a missing file.

    Returns:
        The dataset root ``out``.
    """
    _check("n", n, 1, np.inf)
    _check("pixel_fraction", pixel_fraction, 0.0, 1.0)
    _check("label_noise", label_noise, 0.0, 1.0)
    out = Path(out)
    _prepare(out, overwrite)
    masked = pick_masked([target_grade(seed, i) for i in range(n)], pixel_fraction)
    rows = []
    for i in tqdm(range(n), desc=f"synth -> {out}", unit="img", disable=not progress):
        fundus = generate_fundus(seed, size, index=i, label_noise=label_noise)
        name = image_name(i)
        save_png(fundus.image, out / "images" / f"{name}.png")
        if i in masked:
            for lesion, mask in zip(LESIONS, fundus.masks, strict=True):
                save_png(mask.astype(np.uint8) * 255, out / "masks" / lesion / f"{name}.png")
        rows.append((f"images/{name}.png", fundus.grade, fundus.dme))
    tmp = out / ".labels.csv.tmp"
    with tmp.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(("path", "grade", "dme"))
        writer.writerows(rows)
    tmp.replace(out / "labels.csv")
    return out


def grade_histogram(root: str | Path) -> Counter[int]:
    """Count the grades listed in ``root/labels.csv`` (as written by :func:`write_synthetic`)."""
    with (Path(root) / "labels.csv").open(newline="") as f:
        return Counter(int(row["grade"]) for row in csv.DictReader(f) if row["grade"])


def synthetic_contact_sheet(
    n: int, size: int, seed: int = 0, pixel_fraction: float = 1.0, label_noise: float = DEFAULT_LABEL_NOISE,
    shown: int = 24,
) -> np.ndarray:
    """A picture of the first ``shown`` images of an ``n``-image set, each beside its lesion-mask overlay.

    Captions give the grade label (and the drawn grade where label noise moved it); the overlay's
    caption says whether :func:`write_synthetic` writes that image's masks.
    """
    masked = pick_masked([target_grade(seed, i) for i in range(n)], pixel_fraction)
    tiles, captions = [], []
    for i in range(min(n, shown)):
        fundus = generate_fundus(seed, size, index=i, label_noise=label_noise)
        label = f"#{i} grade {fundus.grade}"
        if fundus.grade != fundus.true_grade:
            label += f" (drawn {fundus.true_grade})"
        tiles += [fundus.image, overlay_masks(fundus.image, fundus.masks, alpha=0.8)]
        captions += [label, "masks" if i in masked else "masks (not written)"]
    return contact_sheet(tiles, captions, cols=8, tile=min(size, 192))
