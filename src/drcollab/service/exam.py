"""``POST /exam``: the photos of one patient's exam, each graded as ``POST /predict`` grades one, and the patient's
decision by the rules of :mod:`drcollab.inference.patients` (worst eye, any referable eye refers, an eye with no
gradable photo makes the patient "cannot grade — re-photograph").

The request is multipart: the photos in ``files`` and, in the same order, one ``eyes`` value per photo (``left`` or
``right``; also ``L`` / ``R``, ``OS`` / ``OD``). The app admits the exam with a place per photo
(:mod:`drcollab.service.admission`) and grades its photos one after the other: the first must reach the model
within ``--max-wait`` of admission, each next one within ``--max-wait`` of the previous answer.
"""

from __future__ import annotations

import time

from fastapi import HTTPException, UploadFile
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from drcollab.constants import DME_GRADES, GRADES
from drcollab.data.header import ImageLimits
from drcollab.inference.grouping import eye_label
from drcollab.inference.patients import RULES, Photo, decide
from drcollab.service.render import PredictResponse
from drcollab.service.uploads import decode_upload


class ExamPhoto(PredictResponse):
    """One photo of the exam: its answer as ``POST /predict`` gives it, its file name and its eye."""

    name: str = Field(description="The uploaded file's name.")
    eye: str = Field(description="left or right, as sent in `eyes`.")


class ExamEye(BaseModel):
    """One eye's decision from its photos."""

    eye: str = Field(description="left or right.")
    decision: str = Field(description="refer, not referable, or cannot grade (no gradable photo).")
    referable: bool | None = Field(description="Null when the eye cannot be graded.")
    grade: int | None = Field(description="The worst DR grade of its gradable photos.")
    grade_name: str | None
    dme: int | None = Field(description="The worst DME risk of its gradable photos (null without a DME head).")
    dme_name: str | None
    referable_probability: float | None = Field(description="The highest P(referable) of its gradable photos.")
    photos: list[int] = Field(description="Indices of its photos in `photos`.")


class ExamResponse(BaseModel):
    """The patient's decision, each eye's, and every photo's answer."""

    decision: str = Field(description="refer, not referable, or cannot grade — re-photograph (an eye could not be "
                          "graded and no eye is referable).")
    referable: bool | None = Field(description="Null when the patient cannot be graded.")
    grade: int | None = Field(description="The worst DR grade of the graded eyes.")
    grade_name: str | None
    dme: int | None = Field(description="The worst DME risk of the graded eyes.")
    dme_name: str | None
    referable_rule: str = Field(description="Who is referred, e.g. 'grade ≥ 2 or DME ≥ 1'.")
    rules: list[str] = Field(description="How the photos' answers make the eyes' and the patient's decisions.")
    eyes: list[ExamEye] = Field(description="The eyes photographed, left before right.")
    photos: list[ExamPhoto] = Field(description="Every photo's answer, in the order sent.")


def read_eyes(names: list[str], eyes: list[str]) -> list[str]:
    """``left`` / ``right`` for each photo. Raises HTTPException 422: a count or a label that does not fit."""
    if not names:
        raise HTTPException(422, "no photo: send the exam's photos in the 'files' field")
    if len(eyes) != len(names):
        raise HTTPException(422, f"{len(names)} photos but {len(eyes)} 'eyes' values: send one eye (left or right) "
                                 "per photo, in the same order")
    sides = [eye_label(e) for e in eyes]
    for name, eye, side in zip(names, eyes, sides, strict=True):
        if side is None:
            raise HTTPException(422, f"{name}: eye {eye!r} is not left or right (also L / R, OS / OD)")
    return sides  # type: ignore[return-value]


def _names(grade: int | None, dme: int | None) -> dict:
    return {"grade": grade, "grade_name": None if grade is None else GRADES[grade], "dme": dme,
            "dme_name": None if dme is None else DME_GRADES[dme]}


def exam_response(names: list[str], sides: list[str], answers: list[PredictResponse], rule: str) -> ExamResponse:
    """The patient's decision from its photos' answers."""
    photos = [Photo(str(k), a.grade, a.dme, a.referable, a.referable_probability, tuple(a.ungradable_reasons))
              for k, a in enumerate(answers)]
    [patient] = decide(("exam", side, photo) for side, photo in zip(sides, photos, strict=True))
    eyes = [ExamEye(eye=e.eye, decision=e.decision, referable=e.referable, **_names(e.grade, e.dme),
                    referable_probability=e.referable_probability, photos=[int(p.id) for p in e.photos])
            for e in patient.eyes]
    shown = [ExamPhoto(**a.model_dump(), name=name, eye=side) for a, name, side in zip(answers, names, sides,
                                                                                     strict=True)]
    return ExamResponse(decision=patient.decision, referable=patient.referable, **_names(patient.grade, patient.dme),
                        referable_rule=rule, rules=list(RULES), eyes=eyes, photos=shown)


async def grade_exam(service, files: list[UploadFile], eyes: list[str], max_pixels: int, limits: ImageLimits,
                     deadline: float) -> ExamResponse:
    """Grade each photo with ``service`` (the app's ``ModelService``), then decide the patient.

    Raises:
        HTTPException: as ``POST /predict`` for a photo, its detail starting with the photo's name; 422 for eyes.
        Busy: a photo did not reach the model in time.
    """
    names = [f.filename or f"photo {k + 1}" for k, f in enumerate(files)]
    sides = read_eyes(names, eyes)
    answers = []
    for k, (upload, name) in enumerate(zip(files, names, strict=True)):
        due = deadline if k == 0 else time.monotonic() + service.admission.max_wait_s
        try:
            image = await run_in_threadpool(decode_upload, await upload.read(), max_pixels, limits)
            answers.append(await service.predict(image, due))
        except HTTPException as err:
            raise HTTPException(err.status_code, f"{name}: {err.detail}") from err
    return exam_response(names, sides, answers, service.rule)
