"""Collect the image files a user points at (files and folders, searched recursively).

Used by ``drcollab predict``: every file found is either kept or skipped with a reason recorded in
the :class:`ScanReport`, so nothing is dropped silently (a symbolic link to nothing included). Only the
image header is read here (cheap); a file whose pixel data is truncated is reported later, when it is
decoded. Folders passed as ``exclude`` (predict's own output folder) are not entered at all, so outputs
written inside an input folder are never read back as inputs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from drcollab.data.io import IMAGE_SUFFIXES
from drcollab.data.records import ScanReport
from drcollab.errors import DataError

HEADER_FAILURE = "unreadable image header"
BROKEN_LINK = "broken symbolic link"
FAILURES = (HEADER_FAILURE, BROKEN_LINK)  # skip reasons that are failures of an image file, not skips


def _skip_reason(path: Path, relative: Path) -> str | None:
    """Why ``path`` is not a usable image, or ``None`` when it is one (``relative``: its path inside the input)."""
    if any(part.startswith(".") for part in relative.parts):
        return "hidden file or folder"
    if not path.exists():
        return f"{BROKEN_LINK} (to {os.readlink(path)}, which does not exist)"
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return f"not an image suffix ({path.suffix.lower() or 'none'})"
    try:
        with Image.open(path):  # parses the header only
            pass
    except Image.DecompressionBombError:
        return None  # a readable header declaring too many pixels: decoding refuses it, naming its size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return HEADER_FAILURE
    return None


def _files(folder: Path, exclude: list[Path]) -> Iterator[Path]:
    """Files and symbolic links to files (broken ones too) under ``folder``, never entering an ``exclude`` folder."""
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        dirs[:] = [d for d in dirs if Path(os.path.abspath(here / d)) not in exclude]
        yield from (here / name for name in files)


def scan_images(inputs: list[Path], exclude: list[Path] | None = None) -> tuple[list[Path], ScanReport]:
    """Sorted image files found in ``inputs``, and what was skipped with why.

    Args:
        inputs: Image files and/or folders (searched recursively).
        exclude: Folders never searched (e.g. the output folder of the run).

    Raises:
        DataError: an input that does not exist.
    """
    excluded = [Path(os.path.abspath(p)) for p in exclude or []]
    report = ScanReport()
    seen: set[Path] = set()
    kept: list[Path] = []
    for item in map(Path, inputs):
        if not item.exists():
            raise DataError(item, "input not found")
        files = [item] if item.is_file() else sorted(_files(item, excluded))
        for path in files:
            if path.resolve() in seen:
                report.skip(path, "listed twice")
                continue
            seen.add(path.resolve())
            reason = _skip_reason(path, Path(path.name) if path == item else path.relative_to(item))
            if reason is None:
                kept.append(path)
            else:
                report.skip(path, reason)
    report.kept = len(kept)
    return sorted(kept), report
