"""The FastAPI app: a good prediction, 4xx JSON for every bad upload, and the server keeps answering."""

from __future__ import annotations

import base64
import io
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from drcollab.constants import DME_GRADES, LESIONS
from drcollab.data.synthetic import generate_fundus
from drcollab.service.app import create_app
from helpers import write_tiny_bundle


def encode(image: np.ndarray, fmt: str = "PNG", **kwargs) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width: int, height: int) -> bytes:
    """A small valid-looking PNG whose header declares ``width x height`` RGB pixels (its data holds ~1 row)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1024)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


GOOD = encode(generate_fundus(0, 128).image, "JPEG", quality=95)
RANDOM_BYTES = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()


@pytest.fixture
def client(tiny_bundle: Path) -> Iterator[TestClient]:
    with TestClient(create_app(tiny_bundle, max_upload_mb=0.25, display_side=96)) as c:
        yield c


def post(client: TestClient, data: bytes, name: str = "eye.jpg", ctype: str = "image/jpeg"):
    return client.post("/predict", files={"file": (name, data, ctype)})


def test_good_upload_gets_grade_probabilities_and_display_pngs(client: TestClient) -> None:
    response = post(client, GOOD)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["width"], body["height"]) == (128, 128)
    assert body["grade"] == int(np.argmax(body["probabilities"])) and len(body["probabilities"]) == 5
    assert body["referable"] == (body["referable_probability"] >= 0.5)
    assert body["referable_rule"] == "grade ≥ 2" and body["dme"] is None and body["dme_probabilities"] == []
    assert body["lesions"] == list(LESIONS) and set(body["lesion_area"]) == set(LESIONS)
    assert (body["display_width"], body["display_height"]) == (96, 96)
    decoded = {k: Image.open(io.BytesIO(base64.b64decode(v))) for k, v in body["lesion_png"].items()}
    assert set(decoded) == set(LESIONS) and all(im.mode == "L" and im.size == (96, 96) for im in decoded.values())
    for key in ("image_png", "overlay_png"):
        assert Image.open(io.BytesIO(base64.b64decode(body[key]))).size == (96, 96)


@pytest.mark.parametrize(
    ("data", "name", "status", "detail"),
    [
        (RANDOM_BYTES, "big.jpg", 413, "0.25 MB limit"),  # over --max-upload-mb
        (b"Dear colleague, the scans follow.\n", "letter.jpg", 415, "not an image"),
        (GOOD[: len(GOOD) // 2], "cut.jpg", 400, "corrupt JPEG"),  # a real JPEG truncated
        (png_header_only(100_000, 100_000), "bomb.png", 413, "image refused"),  # Pillow's bomb guard
        (png_header_only(9_000, 9_000), "huge.png", 413, "over the 50 Mpx limit"),  # our header check
        (encode(generate_fundus(1, 64).image, "GIF"), "eye.gif", 415, "unsupported image format GIF"),
        (b"", "empty.jpg", 400, "empty upload"),
    ],
)
def test_bad_upload_gets_4xx_json_and_the_next_good_request_succeeds(
    client: TestClient, data: bytes, name: str, status: int, detail: str
) -> None:
    response = post(client, data, name)
    assert response.status_code == status, response.text
    assert detail in response.json()["detail"]
    assert post(client, GOOD).status_code == 200


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        (np.zeros((64, 64, 3), np.uint8), "no field of view: "),
        (np.clip(generate_fundus(0, 128).image * 0.1, 0, 255).astype(np.uint8), "under-exposed: "),
        (np.clip(generate_fundus(0, 128).image * 5.0, 0, 255).astype(np.uint8), "over-exposed: "),
    ],
    ids=["black", "dark", "saturated"],
)
def test_an_ungradable_upload_gets_its_reasons_and_no_grade(client: TestClient, image: np.ndarray, reason: str) -> None:
    response = post(client, encode(image), "eye.png", "image/png")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["gradable"] is False and body["ungradable_reasons"][0].startswith(reason)
    assert (body["grade"], body["grade_name"], body["referable"], body["referable_probability"]) == (None,) * 4
    assert body["probabilities"] == [] and body["lesion_area"] == {} and body["lesion_png"] == {}
    assert body["overlay_png"] is None and body["image_png"] is not None
    good = post(client, GOOD).json()
    assert good["gradable"] is True and good["ungradable_reasons"] == [] and good["quality"]["sharpness"] > 0


def test_a_streamed_body_without_length_is_cut_off_at_the_limit(client: TestClient) -> None:
    boundary = "xyz"
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n'.encode()

    def chunks() -> Iterator[bytes]:
        yield head
        for _ in range(40):  # 40 x 10 kB > 0.25 MB
            yield b"\0" * 10_000
        yield f"\r\n--{boundary}--\r\n".encode()

    headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
    response = client.post("/predict", content=chunks(), headers=headers)
    assert response.status_code == 413 and "limit" in response.json()["detail"]
    assert post(client, GOOD).status_code == 200


def test_missing_file_field_is_a_422(client: TestClient) -> None:
    response = client.post("/predict", data={"other": "x"})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "file"]


def test_a_dme_model_answers_dme_and_refers_by_dr_or_dme(tmp_path: Path) -> None:
    bundle = write_tiny_bundle(tmp_path / "model", dme=True)
    with TestClient(create_app(bundle, display_side=96)) as client:
        body = post(client, GOOD).json()
        assert body["dme_grades"] == list(DME_GRADES) and len(body["dme_probabilities"]) == 3
        assert body["dme"] == int(np.argmax(body["dme_probabilities"])) and body["dme_name"] == DME_GRADES[body["dme"]]
        assert body["referable_rule"] == "grade ≥ 2 or DME ≥ 1"
        expected = 1 - sum(body["probabilities"][:2]) * body["dme_probabilities"][0]
        assert body["referable_probability"] == pytest.approx(expected, abs=1e-5)
        dark = post(client, encode(np.zeros((128, 128, 3), np.uint8)), "eye.png", "image/png").json()
        assert dark["gradable"] is False and (dark["dme"], dark["dme_probabilities"], dark["referable"]) == (None, [],
                                                                                                          None)
        health = client.get("/health").json()
        assert health["dme_grades"] == list(DME_GRADES) and health["referable_rule"] == "grade ≥ 2 or DME ≥ 1"


def test_health_page_and_docs(client: TestClient) -> None:
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["model"]["name"] == "tiny" and health["preprocess_size"] == 64
    assert health["dme_grades"] == [] and health["referable_rule"] == "grade ≥ 2"
    page = client.get("/")
    assert page.status_code == 200 and 'id="toggle-SE"' in page.text and 'id="dme-chart"' in page.text
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/docs").status_code == 200
    assert "/predict" in client.get("/openapi.json").json()["paths"]


def test_model_runs_one_request_at_a_time_off_the_event_loop(client: TestClient) -> None:
    predictor = client.app.state.service.engine.predictor
    real, active, peak = predictor.predict_preprocessed, [0], [0]

    def slow(pres):
        active[0] += 1
        peak[0] = max(peak[0], active[0])
        time.sleep(1.0)
        try:
            return real(pres)
        finally:
            active[0] -= 1

    predictor.predict_preprocessed = slow
    codes: list[int] = []
    threads = [threading.Thread(target=lambda: codes.append(post(client, GOOD).status_code)) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    start = time.perf_counter()
    assert client.get("/health").status_code == 200
    health_s = time.perf_counter() - start
    for t in threads:
        t.join()
    assert codes == [200, 200, 200] and peak[0] == 1
    assert health_s < 0.5  # answered while a prediction held the lock for 1 s
