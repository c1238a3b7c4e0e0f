"""Folder lookups that tolerate the small naming variations of real downloads.

Official archives unpacked on different systems differ in letter case (``.jpg`` / ``.JPG``) and
sometimes in spacing of folder names; matching on a normalised name absorbs that.
"""

from __future__ import annotations

import os
from pathlib import Path

from drcollab.data.io import IMAGE_SUFFIXES
from drcollab.errors import DataError


def normalise_name(name: str) -> str:
    """Lower case, single spaces: the key used to match folder and file names."""
    return " ".join(name.lower().split())


def find_child(parent: Path, name: str, what: str = "folder", folder: bool = True) -> Path:
    """The folder (or file) ``name`` inside ``parent``, ignoring letter case and repeated spaces.

    Raises:
        DataError: naming the folder or file that was expected.
    """
    exact = parent / name
    wanted = Path.is_dir if folder else Path.is_file
    if wanted(exact):
        return exact
    if parent.is_dir():
        for child in sorted(parent.iterdir()):
            if wanted(child) and normalise_name(child.name) == normalise_name(name):
                return child
    kind = "folder" if folder else "file"
    raise DataError(exact, f"{what} not found (expected a {kind} named {name!r} in {parent})")


def require_root(root: Path) -> Path:
    """Check that a dataset root exists and is a folder."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(root, "dataset root folder not found" if not root.exists() else "dataset root is not a folder")
    return root


def index_files(folder: Path, suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> dict[str, Path]:
    """Map file stem -> path for the files of ``folder`` whose suffix (any case) is in ``suffixes``.

    Raises:
        DataError: when two files share a stem (e.g. ``a.jpg`` and ``a.png``): which one is meant is unclear.
    """
    index: dict[str, Path] = {}
    with os.scandir(folder) as entries:  # the file type comes with the listing: no stat per file
        files = [Path(e.path) for e in sorted((e for e in entries if e.is_file()), key=lambda e: e.name)]
    for path in files:
        if path.suffix.lower() in suffixes:
            if path.stem in index:
                raise DataError(path, f"two files share the name {path.stem!r}: {index[path.stem].name}, {path.name}")
            index[path.stem] = path
    return index


def strip_image_suffix(name: str) -> str:
    """``"a.tif"`` -> ``"a"``; a name without an image suffix is returned unchanged."""
    path = Path(name)
    return path.stem if path.suffix.lower() in IMAGE_SUFFIXES else name
