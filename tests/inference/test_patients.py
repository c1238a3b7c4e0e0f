"""The eye and patient rules on constructed cases: worst grade, any referable photo or eye, cannot grade."""

from __future__ import annotations

import pytest

from drcollab.inference.patients import (
    EYE_CANNOT_GRADE,
    NOT_REFERABLE,
    PATIENT_CANNOT_GRADE,
    REFER,
    Photo,
    decide,
    decide_eye,
    decide_patient,
    natural_key,
)


def graded(name: str, grade: int, referable: bool, dme: int | None = 0, p: float = 0.5) -> Photo:
    return Photo(name, grade, dme, referable, p)


UNGRADABLE = Photo("blurred.jpg", reasons=("out of focus: sharpness 0.2 < 0.36",))
FAILED = Photo("broken.jpg", reasons=("cannot decode image",))


def test_an_eye_takes_the_worst_grade_and_dme_of_its_gradable_photos() -> None:
    eye = decide_eye("7", "left", [graded("a", 1, False, dme=2, p=0.3), graded("b", 3, True, dme=0, p=0.9),
                                   UNGRADABLE])
    assert (eye.decision, eye.grade, eye.dme, eye.referable_probability, eye.referable) == (REFER, 3, 2, 0.9, True)
    assert [p.id for p in eye.photos] == ["a", "b", "blurred.jpg"]


def test_one_referable_photo_makes_the_eye_referable_whatever_the_others_say() -> None:
    assert decide_eye("7", "left", [graded("a", 0, False), graded("b", 1, True)]).decision == REFER
    assert decide_eye("7", "left", [graded("a", 0, False), graded("b", 1, False)]).decision == NOT_REFERABLE


def test_an_eye_without_a_gradable_photo_cannot_be_graded() -> None:
    eye = decide_eye("7", "right", [UNGRADABLE, FAILED])
    assert (eye.decision, eye.grade, eye.dme, eye.referable) == (EYE_CANNOT_GRADE, None, None, None)
    no_grader = Photo("x.jpg", grade=None, referable=None)  # gradable photo, but a model without a grader
    assert decide_eye("7", "right", [no_grader]).decision == EYE_CANNOT_GRADE


@pytest.mark.parametrize(("left", "right", "decision", "referable"), [
    (REFER, NOT_REFERABLE, REFER, True),
    (REFER, EYE_CANNOT_GRADE, REFER, True),  # a referable eye refers the patient, seen or not the other
    (EYE_CANNOT_GRADE, NOT_REFERABLE, PATIENT_CANNOT_GRADE, None),  # never "not referable"
    (EYE_CANNOT_GRADE, EYE_CANNOT_GRADE, PATIENT_CANNOT_GRADE, None),
    (NOT_REFERABLE, NOT_REFERABLE, NOT_REFERABLE, False),
])
def test_a_patient_is_decided_by_its_eyes(left: str, right: str, decision: str, referable: bool | None) -> None:
    photo = {REFER: graded("r", 2, True), NOT_REFERABLE: graded("n", 0, False), EYE_CANNOT_GRADE: UNGRADABLE}
    eyes = [decide_eye("7", "right", [photo[right]]), decide_eye("7", "left", [photo[left]])]
    patient = decide_patient("7", eyes)
    assert (patient.decision, patient.referable) == (decision, referable)
    assert [e.eye for e in patient.eyes] == ["left", "right"]


def test_a_patient_grade_is_the_worst_of_its_graded_eyes() -> None:
    patient = decide_patient("7", [decide_eye("7", "left", [graded("a", 1, False, dme=1)]),
                                   decide_eye("7", "right", [graded("b", 0, False, dme=0)])])
    assert (patient.grade, patient.dme, patient.decision) == (1, 1, NOT_REFERABLE)


def test_one_eye_photographed_is_decided_alone() -> None:
    [patient] = decide([("3", "left", graded("a", 0, False))])
    assert patient.decision == NOT_REFERABLE and [e.eye for e in patient.eyes] == ["left"]


def test_decide_groups_photos_by_patient_and_eye_in_natural_order() -> None:
    triples = [("10", "left", graded("10_left", 0, False)), ("2", "right", UNGRADABLE),
               ("2", "left", graded("2_left", 0, False)), ("10", "right", graded("10_right", 4, True)),
               ("10", "right", graded("10_right_b", 0, False))]
    patients = decide(triples)
    assert [p.patient for p in patients] == ["2", "10"]
    assert [p.decision for p in patients] == [PATIENT_CANNOT_GRADE, REFER]
    assert [len(e.photos) for e in patients[1].eyes] == [1, 2] and patients[1].grade == 4


def test_an_unknown_eye_or_an_empty_eye_is_refused() -> None:
    with pytest.raises(ValueError, match="eye 'both'"):
        decide([("1", "both", UNGRADABLE)])
    with pytest.raises(ValueError, match="no photo"):
        decide_eye("1", "left", [])
    assert sorted(["p10", "p2", "p1"], key=natural_key) == ["p1", "p2", "p10"]
