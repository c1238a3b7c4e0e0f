"""The sample record shared by every dataset reader.

Readers are cheap: they scan folders and label files and return :class:`Record` objects
(paths and labels only). Pixels are decoded later by :func:`drcollab.data.io.load_sample`,
usually through the preprocessing cache, so a 4288x2848 JPEG is decoded once per run at most.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from drcollab.constants import DME_TARGET_RISKS, LESIONS, MISSING_DME

# Highest grade of each grading scale a Record may carry.
GRADE_SCALES: dict[str, int] = {"icdr": 4, "messidor": 3}
MAX_DME = 2  # risk of macular edema, 0-2 (IDRiD and Messidor)


@dataclass(frozen=True)
class Record:
    """Where one image and its labels live.

    Attributes:
        name: Unique image name within its dataset (file stem, e.g. ``IDRiD_01``).
        image_path: The colour fundus image.
        mask_paths: ``None`` when the image has no pixel labels. Otherwise one entry per lesion in
            :data:`LESIONS` order; an entry of ``None`` means the lesion is absent (all-zero mask).
        grade: DR grade 0-4, or ``None`` when the image has no grade label.
        source: Short dataset tag, e.g. ``"idrid-seg"``, ``"eyepacs"``, ``"synthetic"``.
        grade_scale: ``"icdr"`` (international scale, grades 0-4) or ``"messidor"`` (Messidor's own
            0-3 scale, which does not map onto ICDR grades; see :mod:`drcollab.data.messidor`).
        dme: Risk of diabetic macular edema 0-2 where the dataset gives it (IDRiD, Messidor: 0 = no hard
            exudate, 1 = exudates away from the macula's centre, 2 = within one disc diameter of it), else ``None``.
        dme_partial: The risks a partial DME label leaves open, ``(0, 1)`` or ``(1, 2)``, where the dataset says only
            on which side of a threshold the risk lies (Messidor-2: ``(0, 1)`` = no referable DME); else ``None``.
            At most one of ``dme`` and ``dme_partial`` is set.
        group: The patient (or exam) the image belongs to: validation folds keep a group's images together
            (:mod:`drcollab.data.folds`). ``""`` = the image is a group of its own (IDRiD publishes no patient ids).
    """

    name: str
    image_path: Path
    mask_paths: tuple[Path | None, ...] | None = None
    grade: int | None = None
    source: str = ""
    grade_scale: str = "icdr"
    dme: int | None = None
    dme_partial: tuple[int, ...] | None = None
    group: str = ""

    def __post_init__(self) -> None:
        if self.dme is not None and not 0 <= self.dme <= MAX_DME:
            raise ValueError(f"{self.image_path}: macular edema risk {self.dme} outside 0-{MAX_DME}")
        if self.dme_partial is not None:
            partial = DME_TARGET_RISKS[MAX_DME + 1 :]
            if self.dme_partial not in partial:
                raise ValueError(f"{self.image_path}: partial macular edema label {self.dme_partial} is not one of "
                                 f"{partial} (store an exact risk in dme)")
            if self.dme is not None:
                raise ValueError(f"{self.image_path}: both an exact macular edema risk and a partial label: keep one")
        top = GRADE_SCALES.get(self.grade_scale)
        if top is None:
            raise ValueError(f"{self.image_path}: unknown grade scale {self.grade_scale!r}, use one of {GRADE_SCALES}")
        if self.grade is not None and not 0 <= self.grade <= top:
            raise ValueError(f"{self.image_path}: grade {self.grade} outside the {self.grade_scale} scale 0-{top}")

    @property
    def has_masks(self) -> bool:
        return self.mask_paths is not None

    @property
    def fold_group(self) -> str:
        """The key that keeps images in one fold: ``group``, or the name for an image of its own."""
        return self.group or self.name

    @property
    def dme_target(self) -> int:
        """The DME loss's target: the exact risk, the code of a partial label (:data:`DME_TARGET_RISKS`), or
        :data:`MISSING_DME`."""
        if self.dme is not None:
            return self.dme
        return MISSING_DME if self.dme_partial is None else DME_TARGET_RISKS.index(self.dme_partial)


@dataclass
class Sample:
    """One decoded image with its labels.

    Attributes:
        name: Unique image name.
        image: RGB pixels, ``(H, W, 3)`` uint8.
        masks: Lesion masks, ``(L, H, W)`` bool in :data:`LESIONS` order, or ``None``.
        grade: DR grade 0-4, or ``None``.
        path: The image file it came from.
    """

    name: str
    image: np.ndarray
    masks: np.ndarray | None
    grade: int | None
    path: Path

    def __post_init__(self) -> None:
        if self.image.ndim != 3 or self.image.shape[2] != 3 or self.image.dtype != np.uint8:
            raise ValueError(f"{self.path}: image must be (H, W, 3) uint8, got {self.image.shape} {self.image.dtype}")
        if self.masks is not None:
            expected = (len(LESIONS), *self.image.shape[:2])
            if self.masks.shape != expected or self.masks.dtype != np.bool_:
                got = f"{self.masks.shape} {self.masks.dtype}"
                raise ValueError(f"{self.path}: masks must be {expected} bool, got {got}")


@dataclass
class ScanReport:
    """What a folder scan kept and what it skipped, with reasons. Nothing is skipped silently."""

    kept: int = 0
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def skip(self, path: Path, reason: str) -> None:
        self.skipped.append((path, reason))

    def summary(self) -> str:
        if not self.skipped:
            return f"kept {self.kept} images, skipped none"
        reasons = Counter(reason for _, reason in self.skipped)
        detail = "; ".join(f"{n} {reason}" for reason, n in reasons.most_common())
        return f"kept {self.kept} images, skipped {len(self.skipped)} ({detail})"
