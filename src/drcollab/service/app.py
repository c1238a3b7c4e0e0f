"""``drcollab serve``: a FastAPI app with ``POST /predict``, ``GET /health``, API docs and a web page at ``/``.

The model runs in Starlette's thread pool (never on the event loop) and behind a lock, so one request at a
time uses it while others wait; decoding, preprocessing and PNG encoding run in the pool outside the lock.
Bad requests get a 4xx JSON ``{"detail": "..."}`` and the server stays up. A photo that cannot be graded (too
small or a strip, from its header; no field of view, out of focus, badly exposed, cropped: see
:mod:`drcollab.inference.gradability`) is answered 200 with ``gradable: false``, its reasons and no grade. A
model whose output is not finite (damaged weights) answers 500 with the reason, never a grade. The API docs at
``/docs`` are one plain page built from the OpenAPI schema (``/openapi.json``), with no script or style from a
CDN, so they work offline.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from fastapi import FastAPI, File, HTTPException, UploadFile
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

import drcollab
from drcollab.constants import DME_GRADES, GRADES, LESIONS
from drcollab.data.header import ImageLimits
from drcollab.inference.engine import Engine, load_engine
from drcollab.inference.gradability import GradabilityConfig, check_gradable, header_reasons
from drcollab.inference.outputs import non_finite
from drcollab.inference.referable import rule_text
from drcollab.service.apidocs import api_docs_html
from drcollab.service.render import PredictResponse, render_response, render_ungradable
from drcollab.service.uploads import FORMATS, Refused, UploadLimit, decode_upload

STATIC = Path(__file__).with_name("static")
DEFAULT_MAX_PIXELS = 50_000_000  # a 8000 x 6000 camera image fits; IDRiD's are 12 Mpx


class ModelService:
    """The engine plus the lock that serialises access to it."""

    def __init__(self, engine: Engine, display_side: int, quality: GradabilityConfig) -> None:
        self.engine, self.display_side, self.quality = engine, display_side, quality
        self.rule = rule_text(engine.predictor.referable, engine.predictor.has_dme)
        self.lock = threading.Lock()

    def predict(self, image: np.ndarray | Refused) -> PredictResponse:
        """Runs in a worker thread: checks gradability, then grades. Raises HTTPException 422: the image cannot
        be preprocessed; 500: non-finite output."""
        if isinstance(image, Refused):
            return render_ungradable(image.size_wh, None, header_reasons(image.problem), {}, self.display_side,
                                     self.rule)
        model_size = self.engine.predictor.input_preprocess.size  # the minimum FOV diameter scales with it
        gradable, reasons, measures = check_gradable(image, self.quality, model_size)
        if not gradable:
            size = (image.shape[1], image.shape[0])
            return render_ungradable(size, image, reasons, measures, self.display_side, self.rule)
        predictor = self.engine.predictor
        try:
            pre = predictor.preprocess(image)
        except ValueError as err:
            raise HTTPException(422, f"cannot use this image as a fundus photograph: {err}") from err
        with self.lock:
            pred = predictor.predict_preprocessed([pre])[0]
        reason = non_finite(pred)
        if reason is not None:
            raise HTTPException(500, reason)
        return render_response(image, pred, self.display_side, measures, self.rule)


def create_app(
    checkpoint: str | Path,
    engine: str | None = None,
    device: str = "cpu",
    max_upload_mb: float = 20.0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    display_side: int = 768,
    limits: ImageLimits | None = None,
    quality: GradabilityConfig | None = None,
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
    """
    limits = limits or ImageLimits()
    service = ModelService(load_engine(checkpoint, engine, device), display_side, quality or GradabilityConfig())
    app = FastAPI(
        title="drcollab",
        version=drcollab.__version__,
        description="Diabetic retinopathy grade and lesion maps (MA, HE, EX, SE) for a fundus photograph.",
        docs_url=None,  # FastAPI's Swagger and ReDoc pages load their scripts from a CDN: blank offline
        redoc_url=None,
    )
    app.add_middleware(UploadLimit, max_bytes=int(max_upload_mb * 2**20))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.state.service = service

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

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
            "max_upload_mb": max_upload_mb,
            "max_pixels": max_pixels,
            "min_side": limits.min_side,
            "max_aspect": limits.max_aspect,
            "formats": list(FORMATS),
        }

    @app.post(
        "/predict",
        response_model=PredictResponse,
        responses={
            400: {"description": "Empty or corrupt image."},
            413: {"description": "Upload over --max-upload-mb, or an image declaring more than max_pixels."},
            415: {"description": "Not an image, or not JPEG / PNG / TIFF / BMP."},
            422: {"description": "No 'file' field, pixel data cut short, or an image that cannot be preprocessed. "
                  "(An image below --min-side / over --max-aspect, or one that fails the gradability check, is "
                  "answered 200 with gradable false and its reasons.)"},
            500: {"description": "The model's output is not finite (damaged weights): no grade is given."},
        },
    )
    async def predict(
        file: UploadFile = File(..., description="A fundus photograph (JPEG, PNG, TIFF or BMP).")
    ) -> PredictResponse:
        """Check that one fundus photograph can be graded; then grade it and map its lesions."""
        data = await file.read()
        image = await run_in_threadpool(decode_upload, data, max_pixels, limits)
        return await run_in_threadpool(service.predict, image)

    return app
