"""Under a burst of uploads ``serve`` admits a bounded queue, answers the rest 503 with ``Retry-After``, never
lets an admitted photo wait past ``--max-wait``, and keeps answering the page and ``/health``."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from drcollab.data.synthetic import generate_fundus
from drcollab.service.app import create_app
from helpers import serve_in_thread

MODEL_S = 0.5  # each prediction is slowed to this
BURST = 10


def png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


GOOD = png(generate_fundus(0, 128).image)


@dataclass
class Answer:
    status: int
    seconds: float
    retry_after: str | None
    detail: str | None


def upload(url: str) -> Answer:
    with httpx.Client(base_url=url, trust_env=False, timeout=30) as client:
        start = time.monotonic()
        response = client.post("/predict", files={"file": ("eye.png", GOOD, "image/png")})
        seconds = time.monotonic() - start
    detail = response.json().get("detail") if response.status_code != 200 else None
    return Answer(response.status_code, seconds, response.headers.get("retry-after"), detail)


@contextmanager
def slow_server(tiny_bundle: Path, max_queue: int, max_wait_s: float) -> Iterator[tuple[str, list[float]]]:
    """The app with each prediction slowed to ``MODEL_S``; yields its URL and the model calls' start times."""
    app = create_app(tiny_bundle, display_side=96, max_queue=max_queue, max_wait_s=max_wait_s)
    predictor = app.state.service.engine.predictor
    real, starts = predictor.predict_preprocessed, []

    def slow(pres):
        starts.append(time.monotonic())
        time.sleep(MODEL_S)
        return real(pres)

    predictor.predict_preprocessed = slow
    with serve_in_thread(app) as url:
        yield url, starts


def burst(url: str, n: int) -> tuple[list[Answer], float, list[threading.Thread]]:
    """``n`` uploads at once, each from its own thread: their answers (filled as they come), the time the burst
    began, and the threads to join."""
    answers: list[Answer] = []
    threads = [threading.Thread(target=lambda: answers.append(upload(url))) for _ in range(n)]
    began = time.monotonic()
    for t in threads:
        t.start()
    return answers, began, threads


def timed_get(url: str, path: str) -> tuple[httpx.Response, float]:
    with httpx.Client(base_url=url, trust_env=False, timeout=30) as client:
        start = time.monotonic()
        response = client.get(path)
        return response, time.monotonic() - start


def test_a_full_queue_answers_503_with_retry_after_while_health_and_page_stay_fast(tiny_bundle: Path) -> None:
    with slow_server(tiny_bundle, max_queue=2, max_wait_s=30) as (url, _):
        assert upload(url).status == 200  # times one photo, for Retry-After
        answers, _, threads = burst(url, BURST)
        for _ in range(40):  # until /health reports the queue full
            health, health_s = timed_get(url, "/health")
            if health.json()["in_queue"] == 2:
                break
            time.sleep(0.05)
        page, page_s = timed_get(url, "/")
        script, script_s = timed_get(url, "/static/app.js")
        for t in threads:
            t.join(timeout=30)

    assert health.json()["in_queue"] == 2 and health_s < 1.0  # answered while the queue was full
    assert page.status_code == 200 and script.status_code == 200 and max(page_s, script_s) < 1.0
    graded = [a for a in answers if a.status == 200]
    busy = [a for a in answers if a.status == 503]
    assert len(answers) == BURST and len(graded) + len(busy) == BURST
    assert len(graded) >= 2 and len(busy) >= BURST // 2
    assert max(a.seconds for a in graded) < 2 * MODEL_S + 1.5  # behind at most one other photo
    for a in busy:
        assert a.detail.startswith("busy: 2 photos are waiting or being graded") and "--max-queue" in a.detail
        assert a.retry_after.isdigit() and 1 <= int(a.retry_after) <= 5  # ~2 photos x 0.5 s, not the 10 s guess
        assert a.seconds < MODEL_S + 1.0  # refused at once, not after waiting its turn


def test_a_photo_that_would_wait_past_max_wait_gets_503_instead_of_a_late_grade(tiny_bundle: Path) -> None:
    max_wait_s = 1.0
    with slow_server(tiny_bundle, max_queue=BURST, max_wait_s=max_wait_s) as (url, starts):
        answers, began, threads = burst(url, 6)
        for t in threads:
            t.join(timeout=30)

    assert len(answers) == 6 and {a.status for a in answers} == {200, 503}
    assert all(s - began < max_wait_s + 0.5 for s in starts)  # every graded photo reached the model in time
    assert len(starts) == sum(a.status == 200 for a in answers)
    for a in (a for a in answers if a.status == 503):
        assert "not free within 1 s (serve --max-wait)" in a.detail and a.retry_after.isdigit()
        assert max_wait_s - 0.1 < a.seconds < max_wait_s + 1.5  # answered when its wait ran out
