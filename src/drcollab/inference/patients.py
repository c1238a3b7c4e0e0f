"""Decisions per eye and per patient from the photos' results: the rules a screening programme refers by.

* An eye's grade and DME risk are the worst of its **gradable** photos (a photo with a grade); its P(referable) is
  the highest of theirs.
* An eye is referable if any of its gradable photos is.
* An eye with no gradable photo (every photo ungradable, failed or not graded) **cannot be graded**.
* A patient is referred if any eye is referable.
* A patient with an eye that cannot be graded and no referable eye **cannot be graded: re-photograph**, never
  "not referable": an eye nobody could see is not a healthy eye.
* Otherwise (every eye graded, none referable) the patient is not referable.

Only the eyes that have photos are decided; the rules never look at a photo's arg-max grade alone, only at its
referable flag (which follows the bundle's rule and threshold) and, for the reported grade, its grade and DME.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

REFER, NOT_REFERABLE = "refer", "not referable"
EYE_CANNOT_GRADE = "cannot grade"
PATIENT_CANNOT_GRADE = "cannot grade — re-photograph"
EYES = ("left", "right")
RULES = (
    "an eye's grade and DME are the worst of its gradable photos",
    "an eye is referable if any of its gradable photos is",
    "an eye with no gradable photo cannot be graded",
    "a patient is referred if any eye is referable",
    "a patient with an eye that cannot be graded and no referable eye: cannot grade — re-photograph",
)


@dataclass(frozen=True)
class Photo:
    """What the rules read of one photo's result.

    Attributes:
        id: The photo's id (``predict``'s) or name.
        referable: The referable flag; None when the photo has no grade (ungradable, failed, or a model without a
            grader), so it does not count as gradable.
        reasons: Why it has no grade (empty when it has one).
    """

    id: str
    grade: int | None = None
    dme: int | None = None
    referable: bool | None = None
    referable_probability: float | None = None
    reasons: tuple[str, ...] = ()

    @property
    def gradable(self) -> bool:
        return self.referable is not None


@dataclass(frozen=True)
class Eye:
    """One eye's decision and the photos it was made from."""

    patient: str
    eye: str
    decision: str  # REFER, NOT_REFERABLE or EYE_CANNOT_GRADE
    grade: int | None
    dme: int | None
    referable_probability: float | None
    photos: tuple[Photo, ...]

    @property
    def referable(self) -> bool | None:
        return None if self.decision == EYE_CANNOT_GRADE else self.decision == REFER


@dataclass(frozen=True)
class Patient:
    """One patient's decision and its eyes (left before right)."""

    patient: str
    decision: str  # REFER, NOT_REFERABLE or PATIENT_CANNOT_GRADE
    grade: int | None
    dme: int | None
    eyes: tuple[Eye, ...] = field(default_factory=tuple)

    @property
    def referable(self) -> bool | None:
        return None if self.decision == PATIENT_CANNOT_GRADE else self.decision == REFER


def _worst(values: Iterable[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def decide_eye(patient: str, eye: str, photos: Iterable[Photo]) -> Eye:
    """The eye's decision from its photos (module docstring). Raises ValueError for an eye with no photo."""
    photos = tuple(photos)
    if not photos:
        raise ValueError(f"patient {patient!r}, {eye} eye: no photo to decide from")
    graded = [p for p in photos if p.gradable]
    if not graded:
        return Eye(patient, eye, EYE_CANNOT_GRADE, None, None, None, photos)
    decision = REFER if any(p.referable for p in graded) else NOT_REFERABLE
    probability = max((p.referable_probability for p in graded if p.referable_probability is not None), default=None)
    return Eye(patient, eye, decision, _worst(p.grade for p in graded), _worst(p.dme for p in graded), probability,
               photos)


def decide_patient(patient: str, eyes: Iterable[Eye]) -> Patient:
    """The patient's decision from its eyes (module docstring). Raises ValueError for a patient with no eye."""
    eyes = tuple(sorted(eyes, key=lambda e: EYES.index(e.eye)))
    if not eyes:
        raise ValueError(f"patient {patient!r}: no eye to decide from")
    if any(e.decision == REFER for e in eyes):
        decision = REFER
    elif any(e.decision == EYE_CANNOT_GRADE for e in eyes):
        decision = PATIENT_CANNOT_GRADE
    else:
        decision = NOT_REFERABLE
    return Patient(patient, decision, _worst(e.grade for e in eyes), _worst(e.dme for e in eyes), eyes)


def decide(photos: Iterable[tuple[str, str, Photo]]) -> list[Patient]:
    """Every patient's decision from ``(patient, eye, photo)`` triples, patients in natural order (``2`` before
    ``10``), each eye's photos in the order given."""
    by_eye: dict[str, dict[str, list[Photo]]] = {}
    for patient, eye, photo in photos:
        if eye not in EYES:
            raise ValueError(f"eye {eye!r}: use one of {', '.join(EYES)}")
        by_eye.setdefault(patient, {}).setdefault(eye, []).append(photo)
    return [decide_patient(p, [decide_eye(p, e, ph) for e, ph in by_eye[p].items()])
            for p in sorted(by_eye, key=natural_key)]


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that puts ``patient 2`` before ``patient 10``: digit runs compare as numbers."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name) if part)
