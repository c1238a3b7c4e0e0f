"""``drcollab serve``: a FastAPI app with ``POST /predict``, ``GET /health``, OpenAPI docs and a web page at ``/``.

The model runs in Starlette's thread pool (never on the event loop) and behind a lock, so one request at a
time uses it while others wait; decoding, preprocessing and PNG encoding run in the pool outside the lock.
Bad requests get a 4xx JSON ``{"detail": "..."}`` and the server stays up.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from fastapi import FastAPI, File, HTTPException, UploadFile
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

import drcollab
from drcollab.constants import GRADES, LESIONS
from drcollab.inference.engine import Engine, load_engine
from drcollab.service.render import PredictResponse, render_response
from drcollab.service.uploads import FORMATS, UploadLimit, decode_upload

STATIC = Path(__file__).with_name("static")
DEFAULT_MAX_PIXELS = 50_000_000  # a 8000 x 6000 camera image fits; IDRiD's are 12 Mpx


class ModelService:
    """The engine plus the lock that serialises access to it."""

    def __init__(self, engine: Engine, display_side: int) -> None:
        self.engine, self.display_side = engine, display_side
        self.lock = threading.Lock()

    def predict(self, image: np.ndarray) -> PredictResponse:
        """Runs in a worker thread. Raises HTTPException 422 when no field of view is found."""
        predictor = self.engine.predictor
        try:
            pre = predictor.preprocess(image)
        except ValueError as err:
            raise HTTPException(422, f"cannot use this image as a fundus photograph: {err}") from err
        with self.lock:
            pred = predictor.predict_preprocessed([pre])[0]
        return render_response(image, pred, self.display_side)


def create_app(
    checkpoint: str | Path,
    engine: str | None = None,
    device: str = "cpu",
    max_upload_mb: float = 20.0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    display_side: int = 768,
) -> FastAPI:
    """Build the app around a model bundle or an exported ``.onnx`` file (see :func:`load_engine`).

    Args:
        checkpoint: Run folder, bundle folder, ``bundle.json``, or ``.onnx`` file.
        engine: ``torch`` or ``onnx`` (default: from the checkpoint's suffix).
        device: torch device for the torch engine.
        max_upload_mb: Larger request bodies get 413.
        max_pixels: Images declaring more pixels get 413 before their pixel data is decoded.
        display_side: Longer side of the PNGs in the answer.
    """
    service = ModelService(load_engine(checkpoint, engine, device), display_side)
    app = FastAPI(
        title="drcollab",
        version=drcollab.__version__,
        description="Diabetic retinopathy grade and lesion maps (MA, HE, EX, SE) for a fundus photograph.",
    )
    app.add_middleware(UploadLimit, max_bytes=int(max_upload_mb * 2**20))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.state.service = service

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

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
            "max_upload_mb": max_upload_mb,
            "max_pixels": max_pixels,
            "formats": list(FORMATS),
        }

    @app.post(
        "/predict",
        response_model=PredictResponse,
        responses={
            400: {"description": "Empty or corrupt image."},
            413: {"description": "Upload over --max-upload-mb, or an image declaring more than max_pixels."},
            415: {"description": "Not an image, or not JPEG / PNG / TIFF / BMP."},
            422: {"description": "No 'file' field, or no field of view found in the image."},
        },
    )
    async def predict(
        file: UploadFile = File(..., description="A fundus photograph (JPEG, PNG, TIFF or BMP).")
    ) -> PredictResponse:
        """Grade one fundus photograph and map its lesions."""
        data = await file.read()
        image = await run_in_threadpool(decode_upload, data, max_pixels)
        return await run_in_threadpool(service.predict, image)

    return app
