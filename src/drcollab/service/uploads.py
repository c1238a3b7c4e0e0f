"""Guarding the upload: a request-body size limit (413) and a careful image decode (413 / 415 / 400).

The decode reads the image header first and refuses a declared size above the pixel limit and pixel data cut
short, before any pixel data is decompressed, so a small file that claims 100000 x 100000 pixels costs nothing.
An image too small or of a strip's shape (:func:`drcollab.data.header.shape_problem`) is not decoded either: it
comes back as :class:`Refused`, which the app answers as ungradable. Pillow's own
decompression-bomb guard (``Image.MAX_IMAGE_PIXELS``) stays in place behind it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from fastapi import HTTPException
from PIL import Image, UnidentifiedImageError
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from drcollab.data.header import ImageLimits, header_problem, shape_problem
from drcollab.data.io import FORMAT_NAMES, FORMATS, displayed_size, page_problem, to_rgb


def _too_large(limit: int) -> str:
    return f"upload larger than the {limit / 2**20:g} MB limit (serve --max-upload-mb)"


class UploadLimit:
    """ASGI middleware: answer 413 when a request body is (or declares itself) larger than ``max_bytes``.

    A declared ``Content-Length`` is checked before anything is read (one that is not a number gets a 400); a
    body streamed without one is counted as it arrives and cut off at the limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and not declared.strip().isdigit():
            detail = f"Content-Length header {declared.decode(errors='replace')!r} is not a number of bytes"
            await JSONResponse({"detail": detail}, status_code=400)(scope, receive, send)
            return
        if declared is not None and int(declared) > self.max_bytes:
            await JSONResponse({"detail": _too_large(self.max_bytes)}, status_code=413)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:  # raised inside the route, where FastAPI turns it into a response
                raise HTTPException(413, _too_large(self.max_bytes))
            return message

        await self.app(scope, counted, send)


@dataclass(frozen=True)
class Refused:
    """An upload whose header is below the size floor: its declared size and why (nothing decoded)."""

    size_wh: tuple[int, int]
    problem: str


def decode_upload(data: bytes, max_pixels: int, limits: ImageLimits | None = None) -> np.ndarray | Refused:
    """Decode an uploaded image to ``(H, W, 3)`` uint8 RGB, or refuse it from its header (``limits``, default
    :class:`ImageLimits`'s).

    The image is turned by its EXIF orientation and scaled to 8 bits as :func:`drcollab.data.io.read_image` does.

    Raises:
        HTTPException: 400 empty or corrupt data; 413 more than ``max_pixels`` pixels declared;
            415 not an image, or an image format other than :data:`~drcollab.data.io.FORMATS`; 422 pixel data
            cut short, a multi-page TIFF or a NaN or infinite pixel.
    """
    if not data:
        raise HTTPException(400, f"empty upload: send a {FORMAT_NAMES} fundus photograph in the 'file' field")
    try:
        img = Image.open(io.BytesIO(data))  # parses the header only
    except Image.DecompressionBombError as err:
        raise HTTPException(413, f"image refused: {err}") from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise HTTPException(415, f"not an image: send a {FORMAT_NAMES} fundus photograph") from err
    if img.format not in FORMATS:
        raise HTTPException(415, f"unsupported image format {img.format}: send a {FORMAT_NAMES} fundus photograph")
    w, h = displayed_size(img)
    if w * h > max_pixels:
        declared = f"{w}x{h} = {w * h / 1e6:.1f} Mpx"
        raise HTTPException(413, f"image declares {declared}, over the {max_pixels / 1e6:g} Mpx limit")
    limits = limits or ImageLimits()
    shape = shape_problem(w, h, limits)
    if shape is not None:
        return Refused((w, h), shape)
    problem = page_problem(img) or header_problem(img, len(data), limits)
    if problem is not None:
        raise HTTPException(422, f"image refused: {problem}")
    try:
        img.load()  # the pixel data: a truncated or damaged file fails here
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise HTTPException(400, f"corrupt {img.format} image: {err}") from err
    try:
        return to_rgb(img)
    except ValueError as err:
        raise HTTPException(422, f"image refused: {err}") from err
