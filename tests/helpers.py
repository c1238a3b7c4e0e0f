"""Helpers shared by test files in several folders (importable as ``helpers``: tests/ is on sys.path)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np


def write_tiny_bundle(root: Path, grader_mode: str = "attention", size: int = 64, dme: bool = False,
                      head: str = "softmax", lesion_stats: bool = False) -> Path:
    """A randomly initialised but complete model bundle (tiny widths), as ``drcollab train`` writes one; ``dme``
    gives the grader a DME head, ``head`` is its DR head, ``lesion_stats`` the statistics of G's masks."""
    import torch

    from drcollab.config import GeneratorConfig, GraderConfig, PreprocessConfig
    from drcollab.models import LesionGenerator, LesionGrader, save_model
    from drcollab.models.checkpoint import file_sha256

    torch.manual_seed(0)
    root.mkdir(parents=True, exist_ok=True)
    save_model(LesionGenerator(GeneratorConfig(widths=(4, 8, 8, 16, 16))), root / "generator")
    grader = GraderConfig(mode=grader_mode, backbone="resnet18", att_channels=8, dme=dme, head=head,
                          lesion_stats=lesion_stats)
    save_model(LesionGrader(grader), root / "grader")
    bundle = {
        "name": "tiny",
        "parts": {kind: {"file": kind, "sha256": file_sha256(root / f"{kind}.safetensors")}
                  for kind in ("generator", "grader")},
        "preprocess": PreprocessConfig(size=size).model_dump(mode="json"),
    }
    (root / "bundle.json").write_text(json.dumps(bundle))
    return root


def overwrite_tensor_bytes(path: Path, count: int = 4096) -> None:
    """Damage a safetensors file and keep it valid: ``count`` bytes mid-way through its tensor data become 0x3F
    (float32 0.747, a finite value), as a bad disk or copy might leave them."""
    import struct

    data = bytearray(path.read_bytes())
    start = 8 + struct.unpack("<Q", data[:8])[0]  # the 8-byte header length, the JSON header, then the tensors
    middle = (start + len(data) - count) // 2
    before = bytes(data[middle : middle + count])
    data[middle : middle + count] = b"\x3f" * count
    assert bytes(data[middle : middle + count]) != before, "the damage must change the file"
    path.write_bytes(bytes(data))


def record_sha256(path: Path) -> None:
    """Make the checkpoint JSON beside ``path`` record its weights' current hash, as if saved that way."""
    import json

    from drcollab.models.checkpoint import HASH_KEY, checkpoint_paths, file_sha256

    weights, meta = checkpoint_paths(path)
    info = json.loads(meta.read_text())
    meta.write_text(json.dumps({**info, HASH_KEY: file_sha256(weights)}))


def png_declaring(width: int, height: int, rows: int) -> bytes:
    """An RGB PNG whose header declares ``width x height`` but whose complete pixel stream holds ``rows`` rows."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress((b"\0" + b"\x80" * (3 * width)) * rows)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@contextmanager
def serve_in_thread(app) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port in a background thread; yields its base URL."""
    import pytest
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start within 30 s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


def jpeg_declaring(width: int, height: int) -> bytes:
    """A baseline JPEG of 8x8 pixels whose frame header (SOF0) declares ``width x height``."""
    import io
    import struct

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 80, 40)).save(buf, format="JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")  # marker, length (2 bytes), precision (1), height (2), width (2)
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def save_turned(image: np.ndarray, path: Path, **kwargs: object) -> None:
    """Save ``image`` as a camera held sideways does: the pixels stored turned a quarter counter-clockwise with
    EXIF Orientation 6 (turn clockwise to display), so every viewer shows ``image`` upright."""
    from PIL import ExifTags, Image

    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    Image.fromarray(np.ascontiguousarray(np.rot90(image))).save(path, exif=exif, **kwargs)
