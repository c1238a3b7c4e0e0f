"""Collect the image files a user points at (files and folders, searched recursively).

Used by ``drcollab predict``: every file found is either kept or skipped with a reason recorded in
the :class:`ScanReport`, so nothing is dropped silently. Only the image header is read here (cheap);
a file whose pixel data is truncated is reported later, when it is decoded.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, UnidentifiedImageError

from drcollab.data.io import IMAGE_SUFFIXES
from drcollab.data.records import ScanReport
from drcollab.errors import DataError


def _skip_reason(path: Path, relative: Path) -> str | None:
    """Why ``path`` is not a usable image, or ``None`` when it is one (``relative``: its path inside the input)."""
    if any(part.startswith(".") for part in relative.parts):
        return "hidden file or folder"
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return f"not an image suffix ({path.suffix.lower() or 'none'})"
    try:
        with Image.open(path):  # parses the header only
            pass
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return "unreadable image header"
    return None


def scan_images(inputs: list[Path]) -> tuple[list[Path], ScanReport]:
    """Sorted image files found in ``inputs``, and what was skipped with why.

    Args:
        inputs: Image files and/or folders (searched recursively).

    Raises:
        DataError: an input that does not exist.
    """
    report = ScanReport()
    seen: set[Path] = set()
    kept: list[Path] = []
    for item in map(Path, inputs):
        if not item.exists():
            raise DataError(item, "input not found")
        files = [item] if item.is_file() else sorted(p for p in item.rglob("*") if p.is_file())
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
