"""A trained model bundle: G and the grader plus the preprocessing they were trained with.

``drcollab train`` writes one to ``RUN/model/``::

    bundle.json                 {"name", "parts": {"generator": {...}, "grader": {...}}, "preprocess": {...}}
    generator.safetensors/.json
    grader.safetensors/.json

Everything needed to predict comes from these files, so preprocessing always matches training.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from drcollab.config import PreprocessConfig, format_validation_error
from drcollab.errors import DataError
from drcollab.models import LesionGenerator, LesionGrader, load_model

BUNDLE_FILE = "bundle.json"


@dataclass
class Bundle:
    """The networks of a trained model, in eval mode, and its preprocessing."""

    generator: LesionGenerator | None
    grader: LesionGrader | None
    preprocess: PreprocessConfig
    info: dict[str, Any]
    root: Path
    generator_preprocess: PreprocessConfig | None = None  # G's own resolution when it differs from the grader's

    @property
    def input_preprocess(self) -> PreprocessConfig:
        """How prediction preprocesses an image: at G's size when the bundle has one, else at ``preprocess``'s."""
        return self.generator_preprocess or self.preprocess


def find_bundle(path: str | Path) -> Path:
    """The bundle folder for a run folder, a bundle folder or a ``bundle.json`` path."""
    path = Path(path)
    for candidate in (path, path / "model", path.parent if path.name == BUNDLE_FILE else None):
        if candidate is not None and (candidate / BUNDLE_FILE).is_file():
            return candidate
    raise DataError(path, f"no model bundle here: expected {BUNDLE_FILE} in it or in its model/ folder")


def load_bundle(path: str | Path, device: str | torch.device = "cpu") -> Bundle:
    """Load a bundle (see :func:`find_bundle` for accepted paths).

    Raises:
        DataError: naming the file when the bundle is missing or invalid.
    """
    root = find_bundle(path)
    bundle_path = root / BUNDLE_FILE
    try:
        info = json.loads(bundle_path.read_text())
        preprocess = PreprocessConfig.model_validate(info["preprocess"])
        g_pre = info.get("generator_preprocess")
        generator_preprocess = None if g_pre is None else PreprocessConfig.model_validate(g_pre)
        parts = info["parts"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise DataError(bundle_path, f"not a valid model bundle ({err})") from err
    except ValidationError as err:
        raise DataError(bundle_path, format_validation_error(err, "its 'preprocess' entries")) from err
    if generator_preprocess is not None and generator_preprocess.size % preprocess.size:
        raise DataError(bundle_path, f"generator_preprocess size {generator_preprocess.size} is not a whole multiple "
                        f"of the grader's preprocess size {preprocess.size}")
    if "grader" not in parts and "generator" not in parts:
        raise DataError(bundle_path, "bundle has neither a generator nor a grader")
    generator = load_model(root / parts["generator"]["file"], device) if "generator" in parts else None
    grader = load_model(root / parts["grader"]["file"], device) if "grader" in parts else None
    if grader is not None and grader.config.mode != "ori" and generator is None:
        raise DataError(bundle_path, f"grader mode {grader.config.mode!r} needs the generator, which is missing")
    return Bundle(generator, grader, preprocess, info, root, generator_preprocess)
