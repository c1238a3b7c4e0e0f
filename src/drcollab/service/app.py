"""``drcollab serve``: a FastAPI app with ``POST /predict``, ``POST /exam``, ``GET /health``, API docs and web pages at
``/`` (one photo) and ``/exam`` (the photos of one patient).

The model runs in Starlette's thread pool (never on the event loop), one request at a time in arrival order;
decoding, preprocessing and PNG encoding run in the pool beside it. The queue is bounded (:mod:`.admission`):
beyond ``max_queue`` grading requests, or past ``max_wait_s`` without reaching the model, a request is answered
503 with ``Retry-After``, while the page, ``/health`` and the docs keep answering.
Bad requests get a 4xx JSON ``{"detail": "..."}`` and the server stays up. A photo that cannot be graded (too
small or a strip, from its header; no field of view, out of focus, badly exposed, cropped: see
:mod:`drcollab.inference.gradability`) is answered 200 with ``gradable: false``, its reasons and no grade. A
model whose output is not finite (damaged weights) answers 500 with the reason, never a grade. The API docs at
``/docs`` are one plain page built from the OpenAPI schema (``/openapi.json``), with no script or style from a
CDN, so they work offline.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from drcollab.constants import DME_GRADES, GRADES, LESIONS, VERSION
from drcollab.data.header import ImageLimits
from drcollab.data.io import FORMAT_NAMES, FORMATS
from drcollab.data.preprocess import Preprocessed
from drcollab.inference.api import Ungradable, examine_image
from drcollab.inference.engine import Engine, load_engine
from drcollab.inference.gradability import GradabilityConfig, header_reasons
from drcollab.inference.outputs import non_finite
from drcollab.inference.referable import rule_text
from drcollab.service.admission import DEFAULT_MAX_QUEUE, DEFAULT_MAX_WAIT_S, Admission, Busy
from drcollab.service.apidocs import api_docs_html
from drcollab.service.exam import ExamResponse, grade_exam
from drcollab.service.render import PredictResponse, render_response, render_ungradable
from drcollab.service.uploads import Refused, UploadLimit, decode_upload

STATIC = Path(__file__).with_name("static")
DEFAULT_MAX_PIXELS = 50_000_000  # a 8000 x 6000 camera image fits; IDRiD's are 12 Mpx


class ModelService:
    """The engine, and the admission that bounds the requests waiting for it and takes them one at a time."""

    def __init__(self, engine: Engine, display_side: int, quality: GradabilityConfig, admission: Admission) -> None:
        self.engine, self.display_side, self.quality, self.admission = engine, display_side, quality, admission
        self.rule = rule_text(engine.predictor.referable, engine.predictor.has_dme)

    def check(self, image: np.ndarray | Refused) -> PredictResponse | tuple[Preprocessed, dict[str, float]]:
        """Runs in a worker thread: the answer for an ungradable photo, else the photo preprocessed for the model
        and its quality measures. Raises HTTPException 422: the image cannot be preprocessed."""
        if isinstance(image, Refused):
            return render_ungradable(image.size_wh, None, header_reasons(image.problem), {}, self.display_side,
                                     self.rule)
        try:
            examined = examine_image(self.engine, image, self.quality)  # as predict and drcollab.load examine it
        except ValueError as err:
            raise HTTPException(422, f"cannot use this image as a fundus photograph: {err}") from err
        if isinstance(examined, Ungradable):
            return render_ungradable(examined.size_wh, image, examined.reasons, examined.measures, self.display_side,
                                     self.rule)
        return examined.pre, examined.measures

    async def predict(self, image: np.ndarray | Refused, deadline: float) -> PredictResponse:
        """Check gradability, wait for the model until ``deadline`` (``time.monotonic()``), grade, render.

        Raises:
            HTTPException: 422 the image cannot be preprocessed; 500 non-finite output.
            Busy: the model was not free by ``deadline``.
        """
        checked = await run_in_threadpool(self.check, image)
        if isinstance(checked, PredictResponse):
            return checked
        pre, measures = checked
        async with self.admission.model(deadline):
            pred = (await run_in_threadpool(self.engine.predictor.predict_preprocessed, [pre]))[0]
        reason = non_finite(pred)
        if reason is not None:
            raise HTTPException(500, reason)
        return await run_in_threadpool(render_response, image, pred, self.display_side, measures, self.rule)


def create_app(
    checkpoint: str | Path,
    engine: str | None = None,
    device: str = "cpu",
    max_upload_mb: float = 20.0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    display_side: int = 768,
    limits: ImageLimits | None = None,
    quality: GradabilityConfig | None = None,
    max_queue: int = DEFAULT_MAX_QUEUE,
    max_wait_s: float = DEFAULT_MAX_WAIT_S,
    setting: str = "auto",
) -> FastAPI:
    """Build the app around a model bundle or an exported ``.onnx`` file (see :func:`load_engine`).

    Args:
        checkpoint: Run folder, bundle folder, ``bundle.json``, or ``.onnx`` file.
        engine: ``torch`` or ``onnx`` (default: from the checkpoint's suffix).
        device: torch device for the torch engine.
        max_upload_mb: Larger request bodies get 413.
        max_pixels: Images declaring more pixels get 413 before their pixel data is decoded.
        display_side: Longer side of the PNGs in the answer.
        limits: Images whose header falls below them are ungradable, not decoded (default :class:`ImageLimits`'s).
        quality: The gradability thresholds (default :class:`GradabilityConfig`'s).
        max_queue: Grading requests inside at once (waiting for the model or being served); more get 503.
        max_wait_s: An admitted request not at the model this many seconds after admission gets 503.
        setting: ``auto`` (the fastest setting whose answers match the plain path) or ``plain``, see
            :func:`load_engine`.
    """
    limits = limits or ImageLimits()
    admission = Admission(max_queue, max_wait_s)
    service = ModelService(load_engine(checkpoint, engine, device, setting=setting), display_side,
                           quality or GradabilityConfig(), admission)
    app = FastAPI(
        title="drcollab",
        version=VERSION,
        description="Diabetic retinopathy grade and lesion maps (MA, HE, EX, SE) for a fundus photograph.",
        docs_url=None,  # FastAPI's Swagger and ReDoc pages load their scripts from a CDN: blank offline
        redoc_url=None,
    )
    app.add_middleware(UploadLimit, max_bytes=int(max_upload_mb * 2**20))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.state.service = service

    @app.exception_handler(Busy)
    async def busy(request: Request, err: Busy) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=503, headers={"Retry-After": str(err.retry_after_s)})

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/exam", include_in_schema=False)
    def exam_page() -> FileResponse:
        return FileResponse(STATIC / "exam.html")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(api_docs_html(app.openapi()))

    @app.get("/health")
    def health() -> dict:
        """Liveness and what is being served."""
        eng = service.engine
        return {
            "status": "ok",
            "model": {"name": eng.name, "fingerprint": eng.fingerprint, "engine": eng.kind},
            "preprocess_size": eng.predictor.input_preprocess.size,
            "lesions": list(LESIONS),
            "grades": list(GRADES),
            "dme_grades": list(DME_GRADES) if eng.predictor.has_dme else [],
            "referable_rule": service.rule,
            "referable_threshold": eng.predictor.referable.threshold,
            "max_upload_mb": max_upload_mb,
            "max_pixels": max_pixels,
            "min_side": limits.min_side,
            "max_aspect": limits.max_aspect,
            "formats": list(FORMATS),
            "max_queue": admission.max_queue,
            "max_wait_s": admission.max_wait_s,
            "in_queue": admission.inside,
        }

    predict_errors: dict[int | str, dict] = {
        400: {"description": "Empty or corrupt image."},
        413: {"description": "Upload over --max-upload-mb, or an image declaring more than max_pixels."},
        415: {"description": f"Not an image, or not {FORMAT_NAMES}."},
        500: {"description": "The model's output is not finite (damaged weights): no grade is given."},
    }

    @app.post(
        "/predict",
        response_model=PredictResponse,
        responses={
            **{code: predict_errors[code] for code in (400, 413, 415)},
            422: {"description": "No 'file' field, pixel data cut short, a multi-page TIFF, a NaN or infinite "
                  "pixel, or an image that cannot be preprocessed. "
                  "(An image below --min-side / over --max-aspect, or one that fails the gradability check, is "
                  "answered 200 with gradable false and its reasons.)"},
            500: predict_errors[500],
            503: {"description": "Busy: --max-queue photos are inside already, or this one did not reach the model "
                  "within --max-wait seconds. Retry-After says when to try again."},
        },
    )
    async def predict(
        file: UploadFile = File(..., description=f"A fundus photograph ({FORMAT_NAMES}).")
    ) -> PredictResponse:
        """Check that one fundus photograph can be graded; then grade it and map its lesions."""
        async with admission.admit() as deadline:
            data = await file.read()
            image = await run_in_threadpool(decode_upload, data, max_pixels, limits)
            return await service.predict(image, deadline)

    @app.post("/exam", response_model=ExamResponse, responses={
        **{code: predict_errors[code] for code in (400, 413, 415, 500)},
        422: {"description": "Not one left / right value in 'eyes' per photo; more photos than --max-queue; or a "
              "photo /predict answers 422. A photo's error names it."},
        503: {"description": "Busy: the exam's photos do not all fit in the queue now (each takes a place), or one "
              "did not reach the model within --max-wait seconds. Retry-After says when to try again."},
    })
    async def exam(
        files: list[UploadFile] = File(..., description=f"The photos of one patient ({FORMAT_NAMES})."),
        eyes: list[str] = Form(..., description="One per photo, in the same order: left or right (or L / R, OS / OD)."),
    ) -> ExamResponse:
        """Grade the photos of one patient's exam and decide the patient: refer if any eye is referable; cannot
        grade (re-photograph) if an eye has no gradable photo and none is referable."""
        if len(files) > admission.max_queue:
            raise HTTPException(422, f"an exam of {len(files)} photos is more than the {admission.max_queue} this "
                                     "server grades at once (serve --max-queue): send fewer photos")
        async with admission.admit(len(files)) as deadline:
            return await grade_exam(service, files, eyes, max_pixels, limits, deadline)

    return app
