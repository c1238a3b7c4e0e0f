"""The API refuses degenerate images from their header, never grades from a damaged model, answers every bad
request in JSON, and documents itself without the internet."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image, ImageFile

from drcollab.data.synthetic import generate_fundus
from drcollab.inference import gradability
from drcollab.inference.predictor import Predictor
from drcollab.service.app import create_app
from helpers import png_declaring, save_turned


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


GOOD = png(Image.fromarray(generate_fundus(0, 128).image))


@pytest.fixture
def client(tiny_bundle: Path) -> Iterator[TestClient]:
    with TestClient(create_app(tiny_bundle, max_upload_mb=1, display_side=96)) as c:
        yield c


def post(client: TestClient, data: bytes, name: str = "eye.png"):
    return client.post("/predict", files={"file": (name, data, "image/png")})


@pytest.mark.parametrize(
    ("data", "status", "detail"),
    [
        (png(Image.new("RGB", (1, 1))), 200, "too small: image is 1x1 px, smaller than the 64 px minimum side"),
        (png(Image.new("RGB", (8000, 100))), 200, "implausible shape: image is 8000x100 px, an aspect ratio of 80:1"),
        (png(Image.new("RGB", (65000, 2))), 200, "too small: image is 65000x2 px, smaller than"),
        (png_declaring(7000, 7000, rows=1), 422, "cannot hold them"),
    ],
    ids=["1x1", "8000x100", "65000x2", "7000x7000-one-row"],
)
def test_degenerate_images_are_refused_from_the_header_before_decoding_or_fov_detection(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, data: bytes, status: int, detail: str
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: calls.append("decode"))
    monkeypatch.setattr(Predictor, "preprocess", lambda self, image: calls.append("fov"))
    monkeypatch.setattr(gradability, "detect_fov", lambda *a: calls.append("fov"))
    response = post(client, data)
    assert response.status_code == status and calls == []
    if status == 422:  # a damaged file
        assert detail in response.json()["detail"]
    else:  # too small or a strip: ungradable, never graded
        body = response.json()
        assert body["gradable"] is False and len(body["ungradable_reasons"]) == 1
        assert body["ungradable_reasons"][0].startswith(detail)
        assert body["grade"] is None and body["referable"] is None and body["image_png"] is None


def test_a_damaged_model_answers_500_with_the_reason_never_a_grade(client: TestClient) -> None:
    grader = client.app.state.service.engine.predictor.bundle.grader
    with torch.no_grad():
        for p in grader.parameters():
            p.mul_(3e37)  # finite, absurd weights: the softmax gives NaN
    response = post(client, GOOD)
    assert response.status_code == 500 and "not finite" in response.json()["detail"]
    assert "grade" not in response.json()


def test_a_non_numeric_content_length_gets_a_json_400(client: TestClient) -> None:
    response = client.post("/predict", content=b"x", headers={"content-length": "lots", "content-type": "image/png"})
    assert response.status_code == 400 and "not a number" in response.json()["detail"]


def test_the_api_docs_page_loads_nothing_from_the_network(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and "POST /predict" in page.text and "/openapi.json" in page.text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page.text)  # no script, style or font from a CDN
    assert client.get("/redoc").status_code == 404


def test_min_side_is_a_serve_value(tiny_bundle: Path) -> None:
    from drcollab.data.header import ImageLimits  # here, so the other tests run on code without it

    with TestClient(create_app(tiny_bundle, limits=ImageLimits(min_side=200))) as c:
        body = post(c, GOOD).json()
        assert body["gradable"] is False and "200 px minimum side" in body["ungradable_reasons"][0]
        assert c.get("/health").json()["min_side"] == 200


def encoded(image: np.ndarray, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def test_every_refused_format_message_lists_exactly_the_accepted_ones(client: TestClient) -> None:
    accepted = "JPEG, PNG, TIFF or BMP"
    fundus = generate_fundus(0, 128).image
    for data, status in [(b"Dear colleague, the scans follow.\n", 415), (encoded(fundus, "GIF"), 415), (b"", 400)]:
        response = post(client, data)
        assert response.status_code == status and accepted in response.json()["detail"], response.text
    assert client.get("/health").json()["formats"] == ["JPEG", "PNG", "TIFF", "BMP"]
    bmp = post(client, encoded(fundus, "BMP"), "eye.bmp")
    assert bmp.status_code == 200 and bmp.json()["gradable"] is True


def test_an_upload_stored_sideways_is_answered_as_displayed(client: TestClient, tmp_path: Path) -> None:
    wide = np.zeros((96, 128, 3), np.uint8)
    wide[:, 16:112] = generate_fundus(0, 96).image
    save_turned(wide, tmp_path / "turned.jpg", quality=95)  # stored 96 wide, 128 high
    body = post(client, (tmp_path / "turned.jpg").read_bytes(), "turned.jpg").json()
    assert (body["width"], body["height"]) == (128, 96) and body["gradable"] is True
    assert (body["display_width"], body["display_height"]) == (96, 72)


def test_deep_multi_page_and_non_finite_uploads(client: TestClient) -> None:
    grey = np.asarray(Image.fromarray(generate_fundus(0, 128).image).convert("L"))  # (128, 128) uint8
    sixteen = post(client, encoded(grey.astype(np.uint16) * 257, "PNG")).json()
    eight = post(client, encoded(grey, "PNG")).json()
    assert sixteen["gradable"] is True and sixteen["probabilities"] == eight["probabilities"]
    page = Image.fromarray(generate_fundus(0, 128).image)
    buf = io.BytesIO()
    page.save(buf, format="TIFF", save_all=True, append_images=[page, page])
    response = post(client, buf.getvalue(), "pages.tif")
    assert response.status_code == 422 and "multi-page TIFF (3 pages)" in response.json()["detail"]
    nan = grey.astype(np.float32) / 255
    nan[0, 0] = np.inf
    response = post(client, encoded(nan, "TIFF"), "nan.tif")
    assert response.status_code == 422 and "1 pixels are NaN or infinite" in response.json()["detail"]
