"""``POST /exam``: several photos of one patient, each answered as ``/predict`` answers it, the patient's decision by
the eye and patient rules, one place in the queue per photo, and a clear 4xx for a bad exam."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from drcollab.data.synthetic import generate_fundus
from drcollab.inference.bundle_copy import copy_bundle
from drcollab.service.admission import Admission, Busy
from drcollab.service.app import create_app


def png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


LEFT, RIGHT = png(generate_fundus(1, 96).image), png(generate_fundus(2, 96).image)
DARK = png((generate_fundus(3, 96).image * 0.1).astype(np.uint8))


def client_at(bundle: Path, threshold: float, tmp_path: Path, **options) -> TestClient:
    moved = copy_bundle(bundle, tmp_path / f"at_{threshold}", {"referable": {"dr_min": 2, "dme_min": 1,
                                                                             "threshold": threshold}})
    return TestClient(create_app(moved, display_side=96, **options))


def exam(client: TestClient, photos: list[tuple[str, bytes]], eyes: list[str]):
    files = [("files", (name, data, "image/png")) for name, data in photos]
    return client.post("/exam", files=files, data={"eyes": eyes})


@pytest.mark.parametrize(("threshold", "decision", "right"), [
    (1e-6, "refer", "refer"),  # every graded photo is referable
    (0.999999, "cannot grade — re-photograph", "not referable"),  # none is, and the left eye has only a dark photo
])
def test_an_exam_gets_each_photo_and_the_patient_decision(tiny_bundle: Path, tmp_path: Path, threshold: float,
                                                          decision: str, right: str) -> None:
    with client_at(tiny_bundle, threshold, tmp_path) as client:
        response = exam(client, [("r1.png", RIGHT), ("l_dark.png", DARK), ("r2.png", LEFT)], ["right", "OS", "R"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["decision"] == decision and body["referable"] == (None if "cannot" in decision else True)
    assert [(p["name"], p["eye"], p["gradable"]) for p in body["photos"]] == [
        ("r1.png", "right", True), ("l_dark.png", "left", False), ("r2.png", "right", True)]
    left, right_eye = body["eyes"]
    assert (left["eye"], left["decision"], left["photos"], left["grade"]) == ("left", "cannot grade", [1], None)
    assert (right_eye["eye"], right_eye["decision"], right_eye["photos"]) == ("right", right, [0, 2])
    assert right_eye["grade"] == max(body["photos"][k]["grade"] for k in (0, 2)) == body["grade"]
    assert body["photos"][0]["overlay_png"] and body["photos"][1]["ungradable_reasons"][0].startswith("under-exposed")
    assert body["rules"][-1].endswith("cannot grade — re-photograph")


@pytest.mark.parametrize(("photos", "eyes", "status", "detail"), [
    ([("a.png", LEFT), ("b.png", RIGHT)], ["left"], 422, "2 photos but 1 'eyes' values"),
    ([("a.png", LEFT)], ["both"], 422, "a.png: eye 'both' is not left or right"),
    ([("a.png", LEFT), ("notes.png", b"patient list")], ["left", "right"], 415, "notes.png: not an image"),
    ([(f"{k}.png", LEFT) for k in range(3)], ["left"] * 3, 422, "an exam of 3 photos is more than the 2"),
])
def test_a_bad_exam_is_refused_with_the_photo_named(tiny_bundle: Path, tmp_path: Path, photos, eyes, status,
                                                    detail) -> None:
    with client_at(tiny_bundle, 0.5, tmp_path, max_queue=2) as client:
        response = exam(client, photos, eyes)
        assert response.status_code == status and detail in response.json()["detail"]
        assert client.app.state.service.admission.inside == 0  # every place given back


def test_an_exam_that_does_not_fit_the_queue_is_refused_whole(tiny_bundle: Path, tmp_path: Path) -> None:
    with client_at(tiny_bundle, 0.5, tmp_path, max_queue=3) as client:
        admission = client.app.state.service.admission
        admission.inside = 2  # two photos already waiting or being graded
        response = exam(client, [("a.png", LEFT), ("b.png", RIGHT)], ["left", "right"])
        assert response.status_code == 503 and response.headers["retry-after"]
        assert "an exam of 2 photos needs 2 places; 2 photos are waiting" in response.json()["detail"]
        assert admission.inside == 2 and not admission.model_s  # nothing was graded
        admission.inside = 1
        assert exam(client, [("a.png", LEFT), ("b.png", RIGHT)], ["left", "right"]).status_code == 200


def test_admission_takes_all_the_places_of_a_request_or_none() -> None:
    async def scenario() -> list[int]:
        admission, seen = Admission(max_queue=4), []
        async with admission.admit(3):
            seen.append(admission.inside)
            with pytest.raises(Busy, match="an exam of 2 photos needs 2 places; 3 photos"):
                async with admission.admit(2):
                    pass
            seen.append(admission.inside)
            async with admission.admit(1):
                seen.append(admission.inside)
        seen.append(admission.inside)
        return seen

    assert asyncio.run(scenario()) == [3, 3, 4, 0]
