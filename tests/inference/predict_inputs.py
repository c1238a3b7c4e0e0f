"""Input folders for the ``drcollab predict`` tests (imported as ``from predict_inputs import ...``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from drcollab.cli import app
from drcollab.data.synthetic import generate_fundus

# id -> (height, width) of the good images written by make_mixed_folder (folder name "scans")
GOOD_SIZES = {"scans/wide.jpg": (96, 128), "scans/left/small.png": (80, 80), "scans/tall.tif": (120, 112)}
BAD_FILES = {"broken.jpg", "notes.jpg"}


def wide_fundus(seed: int, height: int, width: int) -> np.ndarray:
    """A synthetic fundus of side ``min(height, width)`` centred on a black ``(height, width)`` canvas."""
    side = min(height, width)
    canvas = np.zeros((height, width, 3), np.uint8)
    y0, x0 = (height - side) // 2, (width - side) // 2
    canvas[y0 : y0 + side, x0 : x0 + side] = generate_fundus(seed, side).image
    return canvas


def make_mixed_folder(root: Path) -> Path:
    """``root/scans`` with three good images (JPEG, PNG, TIFF; one in a sub-folder), a truncated JPEG, a text
    file renamed ``.jpg`` and a ``readme.txt``."""
    folder = root / "scans"
    (folder / "left").mkdir(parents=True)
    for k, (item_id, (h, w)) in enumerate(GOOD_SIZES.items()):
        Image.fromarray(wide_fundus(k, h, w)).save(root / item_id, quality=95)
    jpeg = (folder / "wide.jpg").read_bytes()
    (folder / "broken.jpg").write_bytes(jpeg[: len(jpeg) // 2])  # a real JPEG cut in half
    (folder / "notes.jpg").write_text("patient list, not an image\n")
    (folder / "readme.txt").write_text("scans from clinic A\n")
    return folder


def predict_cli(*args: str | Path):
    """``drcollab predict ARGS --no-progress`` through typer's test runner."""
    return CliRunner().invoke(app, ["predict", *map(str, args), "--no-progress"])
