"""The web pages in headless Chromium (Playwright): upload, grade, DME, referable, overlay, lesion toggle, errors; an
exam of several photos with the patient's decision.

Uses Debian's ``/usr/bin/chromium`` (``make test`` installs it when missing); Playwright never downloads a
browser. Skips, saying why, where Chromium is absent or cannot start. The server runs a tiny random-weight
bundle with a DME head unless ``DRCOLLAB_WEB_UI_BUNDLE`` names another (it needs one too). To refresh the
screenshot in the docs with the demo model (``make demo`` first)::

    DRCOLLAB_WEB_UI_BUNDLE=runs/demo/run/model DRCOLLAB_WEB_UI_PNG=docs/img/web_ui.png \
        .venv/bin/python -m pytest tests/service/test_browser.py

and the exam page's with a bundle whose model works at 1152 px or less (its photos are 960 px), e.g. the release::

    DRCOLLAB_WEB_UI_BUNDLE=release/drcollab-idrid-cpu DRCOLLAB_WEB_EXAM_PNG=docs/img/web_exam.png \
        .venv/bin/python -m pytest tests/service/test_browser.py -k exam
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from drcollab.constants import DME_GRADES
from drcollab.data.synthetic import generate_fundus
from drcollab.service.app import create_app
from helpers import serve_in_thread, write_tiny_bundle

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("Chromium is not installed and could not be (make test runs `apt-get install -y chromium`)")
    return path


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """The app on a free loopback port, served by uvicorn in a background thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model; OpenMP spin-waits slow it down on a loaded 2-core box
    bundle = os.environ.get("DRCOLLAB_WEB_UI_BUNDLE") or write_tiny_bundle(tmp_path / "model", size=128, dme=True)
    with serve_in_thread(create_app(bundle, display_side=512)) as url:
        yield url
    torch.set_num_threads(threads)


@pytest.fixture
def page(server: str) -> Iterator:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed: pip install -e '.[dev]'")
    executable = chromium_path()
    with sync_api.sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        except sync_api.Error as err:
            pytest.skip(f"Chromium at {executable} cannot start here: {str(err).splitlines()[0]}")
        pg = browser.new_page(viewport={"width": 1280, "height": 860})
        pg.goto(server)
        yield pg
        browser.close()


def screenshot(page, shot: Path, env: str) -> None:
    """The whole page as a PNG at ``shot``, copied to the path in ``$env`` when set (the docs' screenshots)."""
    page.screenshot(path=str(shot), full_page=True)
    target = os.environ.get(env)
    if target:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)
    assert np.asarray(Image.open(shot)).std() > 10  # a real page, not a blank one


def canvas_png(page) -> str:
    return page.evaluate("() => document.getElementById('overlay').toDataURL()")


def test_upload_shows_grade_and_overlay_and_lesion_toggles_work(page, tmp_path: Path) -> None:
    image = tmp_path / "fundus.jpg"
    Image.fromarray(generate_fundus(7, 512, grade=3).image).save(image, quality=92)
    page.wait_for_function("document.getElementById('model').textContent.includes(' · torch · ')")
    page.set_input_files("#file", str(image))
    page.wait_for_selector("body[data-state=ready]", timeout=60_000)
    assert page.inner_text("#grade") in {"0", "1", "2", "3", "4"}
    assert page.inner_text("#dme") in {"0", "1", "2"} and page.locator("#dme-box").is_visible()
    assert page.inner_text("#dme-name") in DME_GRADES
    referable = page.inner_text("#referable")
    assert referable.startswith(("Referable", "Not referable")) and "P(grade ≥ 2 or DME ≥ 1) = " in referable
    assert page.locator("#chart .bar-row").count() == 5 and page.locator("#dme-chart .bar-row").count() == 3
    assert page.eval_on_selector("#overlay", "c => [c.width, c.height]") == [512, 512]
    assert page.inner_text("#area-MA").endswith("%")
    screenshot(page, tmp_path / "web_ui.png", "DRCOLLAB_WEB_UI_PNG")

    with_all = canvas_png(page)
    page.uncheck("#toggle-MA")
    without_ma = canvas_png(page)
    assert without_ma != with_all
    page.uncheck("#toggle-HE")
    assert canvas_png(page) not in (with_all, without_ma)
    page.check("#toggle-HE")
    assert canvas_png(page) == without_ma
    page.check("#toggle-MA")
    assert canvas_png(page) == with_all


def test_a_non_image_upload_shows_the_server_reason(page, tmp_path: Path) -> None:
    letter = tmp_path / "letter.jpg"
    letter.write_text("not a photograph")
    page.set_input_files("#file", str(letter))
    page.wait_for_selector("body[data-state=error]", timeout=30_000)
    assert "not an image" in page.inner_text("#status") and "415" in page.inner_text("#status")
    assert page.locator("#result").is_hidden()


def test_an_ungradable_photo_shows_its_reason_and_no_grade(page, tmp_path: Path) -> None:
    dark = tmp_path / "dark.png"
    Image.fromarray((generate_fundus(7, 256).image * 0.1).astype(np.uint8)).save(dark)
    page.set_input_files("#file", str(dark))
    page.wait_for_selector("body[data-state=ungradable]", timeout=60_000)
    assert "cannot be graded" in page.inner_text("#status")
    assert page.inner_text("#reasons").startswith("under-exposed: ") and page.locator("#ungradable").is_visible()
    assert page.inner_text("#grade") == "–" and page.inner_text("#referable") == ""
    assert page.locator("#chart .bar-row").count() == 0 and page.locator("#dme-chart .bar-row").count() == 0
    assert page.locator("#dme-box").is_hidden()


def test_an_exam_shows_the_patient_decision_on_top_and_each_eye_with_its_photos(page, tmp_path: Path) -> None:
    """Three photos of one patient: the right eye twice (one name says so, one is chosen on the page), the left eye
    once, too dark to grade: the patient is referred or must be re-photographed, never cleared. With
    ``DRCOLLAB_WEB_EXAM_PNG`` set, the page's screenshot is copied there (docs/img/web_exam.png)."""
    photos = {"7_right.jpg": generate_fundus(11, 960, grade=3).image, "scan2.jpg": generate_fundus(12, 960).image,
              "7_left.jpg": (generate_fundus(13, 960).image * 0.1).astype(np.uint8)}
    for name, image in photos.items():
        Image.fromarray(image).save(tmp_path / name, quality=92)
    page.goto(page.url + "exam")
    page.wait_for_function("document.getElementById('model').textContent.includes(' · torch · ')")
    page.set_input_files("#files", [str(tmp_path / name) for name in photos])
    eyes = page.eval_on_selector_all("#photo-list select", "s => s.map(e => e.value)")
    assert eyes == ["right", "", "left"]  # read from the names; scan2.jpg names no eye
    assert page.is_disabled("#grade-exam") and "Choose the eye of 1 photo" in page.inner_text("#status")
    page.select_option("#photo-list tr:nth-child(2) select", "right")
    page.click("#grade-exam")
    page.wait_for_selector("body[data-state=ready]", timeout=300_000)
    decision = page.inner_text("#decision-text")
    right_referable = page.locator(".eye-column:nth-child(2) .badge.refer").count() > 0
    assert decision == ("Refer" if right_referable else "Cannot grade — re-photograph")
    assert page.inner_text(".eye-column:nth-child(1) h2") == "Left eye"
    assert page.locator(".eye-column:nth-child(1) .card").count() == 1
    assert page.inner_text(".eye-column:nth-child(1) .card-ungradable").startswith("Cannot be graded: under-exposed")
    assert page.locator(".eye-column:nth-child(2) .card img").count() == 2
    assert page.inner_text("#eye-list").startswith("Left eye: cannot grade")
    screenshot(page, tmp_path / "web_exam.png", "DRCOLLAB_WEB_EXAM_PNG")
