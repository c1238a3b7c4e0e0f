"""``predict --groups`` / ``--group-pattern``: ``patients.csv``, ``patients.json`` and ``eyes.csv`` beside the
photos' ``predictions.csv`` / ``.json``, from the rules of :mod:`drcollab.inference.patients`.

``patients.json``::

    {"rules": [...],                                 # the rules, in words
     "referable": {"dr_min", "dme_min", "threshold", "uses_dme"},
     "grouping": "groups.csv" | "eyepacs",
     "counts": {"patients", "refer", "cannot_grade", "not_referable", "eyes", "photos", "ungrouped"},
     "patients": [{"patient", "decision", "referable", "grade", "grade_name", "dme", "dme_name",
                   "eyes": [{"eye", "decision", "referable", "grade", "grade_name", "dme", "dme_name",
                             "referable_probability",
                             "photos": [{"id", "gradable", "grade", "dme", "referable", "referable_probability",
                                         "reasons"}]}]}],
     "ungrouped": [id, ...]}                         # images of the run that no group names
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from drcollab.constants import DME_GRADES, GRADES
from drcollab.files import atomic_write_text
from drcollab.inference.grouping import Assignment
from drcollab.inference.outputs import strict_json
from drcollab.inference.patients import (
    EYE_CANNOT_GRADE,
    PATIENT_CANNOT_GRADE,
    REFER,
    RULES,
    Eye,
    Patient,
    Photo,
    decide,
)

PATIENTS_CSV, PATIENTS_JSON, EYES_CSV = "patients.csv", "patients.json", "eyes.csv"


def photo_of(record: dict[str, Any] | None, failure: str | None, image_id: str) -> Photo:
    """What the rules read of one image: its ``predict`` record, or why it has none (failed, not predicted)."""
    if record is None:
        return Photo(image_id, reasons=(f"failed: {failure}" if failure else "not predicted",))
    if record["referable"] is None:
        reasons = tuple(record["ungradable_reasons"]) or ("the model gives no grade",)
        return Photo(image_id, reasons=reasons)
    return Photo(image_id, record["grade"], record["dme"], record["referable"], record["referable_probability"])


def decide_run(assignment: Assignment, records: list[dict[str, Any]], failures: dict[str, str]) -> list[Patient]:
    """Every grouped image's patient decision (``failures``: image id -> reason, for images without a record)."""
    by_id = {r["id"]: r for r in records}
    return decide((patient, eye, photo_of(by_id.get(image_id), failures.get(image_id), image_id))
                  for image_id, (patient, eye) in sorted(assignment.eyes.items()))


def _names(grade: int | None, dme: int | None) -> dict[str, Any]:
    return {"grade": grade, "grade_name": None if grade is None else GRADES[grade], "dme": dme,
            "dme_name": None if dme is None else DME_GRADES[dme]}


def _eye_record(eye: Eye) -> dict[str, Any]:
    photos = [{"id": p.id, "gradable": p.gradable, "grade": p.grade, "dme": p.dme, "referable": p.referable,
               "referable_probability": p.referable_probability, "reasons": list(p.reasons)} for p in eye.photos]
    return {"eye": eye.eye, "decision": eye.decision, "referable": eye.referable, **_names(eye.grade, eye.dme),
            "referable_probability": eye.referable_probability, "photos": photos}


def patients_json(patients: list[Patient], ungrouped: list[str], grouping: str, referable: dict[str, Any]) -> str:
    eyes = [e for p in patients for e in p.eyes]
    counts = {"patients": len(patients), "refer": sum(p.decision == REFER for p in patients),
              "cannot_grade": sum(p.decision == PATIENT_CANNOT_GRADE for p in patients),
              "not_referable": sum(p.referable is False for p in patients), "eyes": len(eyes),
              "photos": sum(len(e.photos) for e in eyes), "ungrouped": len(ungrouped)}
    body = [{"patient": p.patient, "decision": p.decision, "referable": p.referable, **_names(p.grade, p.dme),
             "eyes": [_eye_record(e) for e in p.eyes]} for p in patients]
    return strict_json({"rules": list(RULES), "referable": referable, "grouping": grouping, "counts": counts,
                        "patients": body, "ungrouped": ungrouped})


def _csv(header: list[str], rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([["" if v is None else v for v in row] for row in rows])
    return buf.getvalue()


def patients_csv(patients: list[Patient]) -> str:
    """One row per patient: its decision, worst grade and DME, each eye's decision, and its photos."""
    rows = []
    for p in patients:
        eyes = {e.eye: e.decision for e in p.eyes}
        photos = "; ".join(ph.id for e in p.eyes for ph in e.photos)
        rows.append([p.patient, p.decision, p.referable, *_names(p.grade, p.dme).values(), eyes.get("left"),
                     eyes.get("right"), photos])
    return _csv(["patient", "decision", "referable", "grade", "grade_name", "dme", "dme_name", "left", "right",
                 "photos"], rows)


def eyes_csv(patients: list[Patient]) -> str:
    """One row per eye: its decision, worst grade and DME, highest P(referable), its photos and, when it cannot be
    graded, why not."""
    rows = []
    for p in patients:
        for e in p.eyes:
            graded = sum(ph.gradable for ph in e.photos)
            why = "; ".join(f"{ph.id}: {', '.join(ph.reasons)}" for ph in e.photos if not ph.gradable) \
                if e.decision == EYE_CANNOT_GRADE else ""
            rows.append([p.patient, e.eye, e.decision, e.referable, *_names(e.grade, e.dme).values(),
                         e.referable_probability, len(e.photos), graded, "; ".join(ph.id for ph in e.photos), why])
    return _csv(["patient", "eye", "decision", "referable", "grade", "grade_name", "dme", "dme_name",
                 "referable_probability", "photos", "gradable_photos", "photo_ids", "why_not_graded"], rows)


def write_run_patients(out_dir: Path, grouping: str, assignment: Assignment, records: list[dict[str, Any]],
                       failures: list[dict[str, str]], paths: dict[str, Path], referable: dict[str, Any]
                       ) -> list[Patient]:
    """Decide a finished ``predict`` run's patients and write their files; returns the decisions.

    Args:
        records: The run's records; ``failures``: its ``{"path", "reason"}`` entries; ``paths``: image id -> path.
    """
    ids = {str(path): image_id for image_id, path in paths.items()}
    failed = {ids[f["path"]]: f["reason"] for f in failures if f["path"] in ids}
    patients = decide_run(assignment, records, failed)
    write_patient_outputs(out_dir, patients, assignment.ungrouped, grouping, referable)
    return patients


def write_patient_outputs(out_dir: Path, patients: list[Patient], ungrouped: list[str], grouping: str,
                          referable: dict[str, Any]) -> None:
    """Write ``patients.csv``, ``eyes.csv`` and ``patients.json`` into ``out_dir`` (each atomically)."""
    atomic_write_text(Path(out_dir) / EYES_CSV, eyes_csv(patients))
    atomic_write_text(Path(out_dir) / PATIENTS_CSV, patients_csv(patients))
    atomic_write_text(Path(out_dir) / PATIENTS_JSON, patients_json(patients, ungrouped, grouping, referable))
