"""A copy of a model bundle with some ``bundle.json`` entries changed, e.g. the referral threshold of a programme.

The new folder holds ``bundle.json`` and each part's ``.safetensors`` / ``.json`` files, byte for byte, so their
``sha256`` entries stay valid (checked after the copy); nothing else of the source folder is copied. It is written
into a temporary folder beside the target and renamed into place, so an interrupted copy leaves no half bundle,
and the source is never written to.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from drcollab.errors import DataError
from drcollab.files import writing
from drcollab.inference.bundle import BUNDLE_FILE, find_bundle
from drcollab.models.checkpoint import checkpoint_paths, file_sha256


def check_new_folder(source: str | Path, out: str | Path) -> Path:
    """The source bundle folder, once ``out`` is known to be a folder a copy can be written to.

    Raises:
        DataError: no bundle at ``source``; ``out`` is the source folder, a file, or a folder that is not empty.
    """
    root, out = find_bundle(source), Path(out)
    if out.resolve() == root.resolve():
        raise DataError(out, "is the bundle being copied: choose a new folder for the copy (the source is never "
                             "changed)")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(out, "already exists and is not an empty folder: choose a new folder for the bundle")
    return root


def copy_bundle(source: str | Path, out: str | Path, changes: dict[str, Any]) -> Path:
    """Copy the bundle at ``source`` to the folder ``out`` with ``changes`` merged into its ``bundle.json``.

    Raises:
        DataError: see :func:`check_new_folder`; a part whose copy does not match its ``sha256`` entry.
        WriteError: ``out`` cannot be written.
    """
    root, out = check_new_folder(source, out), Path(out)
    info = json.loads((root / BUNDLE_FILE).read_text())
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    with writing(out):
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            for part in info["parts"].values():
                for path in checkpoint_paths(root / part["file"]):
                    target = tmp / path.relative_to(root)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(path, target)
                weights = checkpoint_paths(tmp / part["file"])[0]
                if part.get("sha256") and file_sha256(weights) != part["sha256"]:
                    raise DataError(root / weights.relative_to(tmp), "changed while it was copied (its sha256 no "
                                    "longer matches bundle.json): copy the bundle again")
            (tmp / BUNDLE_FILE).write_text(json.dumps({**info, **changes}, indent=2, allow_nan=False) + "\n")
            if out.exists():
                out.rmdir()  # empty, checked above
            os.replace(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return out
