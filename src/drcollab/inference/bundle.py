"""A trained model bundle: G and the grader plus the preprocessing they were trained with.

``drcollab train`` writes one to ``RUN/model/``::

    bundle.json                 {"name", "parts": {"generator": {"file", "sha256"}, "grader": {...}},
                                 "preprocess": {...}, "referable": {"dr_min", "dme_min", "threshold"}}
                                 (referable absent: 2, 1, 0.5)
                                 optional: "tile", "tile_overlap", "tta" (see Predictor),
                                 "min_fov_fraction" (the narrowest field of view it grades, as a
                                 fraction of its working size; absent: MIN_FOV_FRACTION)
    generator.safetensors/.json
    grader.safetensors/.json

Everything needed to predict comes from these files, so preprocessing always matches training.

Each part's ``sha256`` is the hash of its ``.safetensors`` file: loading refuses a file whose hash differs, so
weights damaged or replaced with values that still look valid are never used silently. A bundle written before
the hashes were recorded has none and still loads: refusing it would strand every such bundle, and its
checkpoint JSONs (when they record ``weights_sha256``) and the finite-weights check still guard it; exporting it
again from its run folder adds the hashes. The rest of ``bundle.json`` is not hashed, since its referable rule
and tiles are meant to be edited.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from drcollab.config import PreprocessConfig, ReferableConfig, Tta
from drcollab.constants import MIN_FOV_FRACTION
from drcollab.errors import DataError
from drcollab.models import LesionGenerator, LesionGrader, load_model
from drcollab.models.checkpoint import checkpoint_paths
from drcollab.models.generator import SIZE_MULTIPLE

BUNDLE_FILE = "bundle.json"
SHA256 = re.compile(r"^[0-9a-f]{64}$")


class PartEntry(BaseModel):
    """One network of ``bundle.json``'s ``parts``: its checkpoint stem, a name inside the bundle folder."""

    model_config = ConfigDict(extra="allow")
    file: str
    sha256: str | None = Field(None, description="sha256 of the part's .safetensors file; absent: not checked.")

    @field_validator("sha256")
    @classmethod
    def _hex_digest(cls, sha256: str | None) -> str | None:
        if sha256 is not None and not SHA256.match(sha256):
            raise ValueError("must be a sha256 in hex: 64 characters 0-9 and a-f")
        return sha256

    @field_validator("file")
    @classmethod
    def _inside_bundle(cls, file: str) -> str:
        if not file or PurePath(file).is_absolute() or ".." in PurePath(file).parts or "\\" in file:
            raise ValueError("must name a file inside the bundle folder (no absolute path, no '..')")
        return file


class BundleSpec(BaseModel):
    """The structure of ``bundle.json``, checked before any file it names is opened."""

    model_config = ConfigDict(extra="allow")
    name: str | None = None
    parts: dict[Literal["generator", "grader"], PartEntry]
    preprocess: PreprocessConfig
    generator_preprocess: PreprocessConfig | None = None
    tile: int | None = Field(None, ge=0, description="G's tile side; null or 0 runs G on the whole image.")
    tile_overlap: int = Field(0, ge=0, description="Minimum overlap of the tiles (absent: tile // 4).")
    referable: ReferableConfig = Field(default_factory=ReferableConfig, description="Who is referred.")
    tta: Tta = Field("none", description="Test-time flips prediction averages over (see Predictor).")
    min_fov_fraction: float = Field(MIN_FOV_FRACTION, ge=0, le=2, description="A field of view narrower than this "
                                    "fraction of the working size is too small to grade (inference/gradability.py).")

    @model_validator(mode="after")
    def _usable_tiles(self) -> BundleSpec:
        if self.tile and self.tile % SIZE_MULTIPLE:
            raise ValueError(f"tile {self.tile} must be a multiple of {SIZE_MULTIPLE} (G's input size), or 0")
        if self.tile and "tile_overlap" in self.model_fields_set and self.tile_overlap >= self.tile:
            raise ValueError(f"tile_overlap {self.tile_overlap} must be smaller than tile {self.tile}")
        return self


def _first_problem(err: ValidationError) -> str:
    e = err.errors()[0]
    msg = e["msg"].removeprefix("Value error, ")
    where = f"{'.'.join(str(p) for p in e['loc'])}: {msg} (got {e.get('input')!r})" if e["loc"] else msg
    more = f" (and {err.error_count() - 1} more problems)" if err.error_count() > 1 else ""
    return f"{where}{more}; fix or re-export the bundle"


@dataclass
class Bundle:
    """The networks of a trained model, in eval mode, and its preprocessing."""

    generator: LesionGenerator | None
    grader: LesionGrader | None
    preprocess: PreprocessConfig
    info: dict[str, Any]
    root: Path
    generator_preprocess: PreprocessConfig | None = None  # G's own resolution when it differs from the grader's
    referable: ReferableConfig = field(default_factory=ReferableConfig)
    min_fov_fraction: float = MIN_FOV_FRACTION  # the narrowest FOV it grades, as a fraction of its working size

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
        spec = BundleSpec.model_validate(info)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(bundle_path, f"not valid JSON ({err}); fix or re-export the bundle") from err
    except ValidationError as err:
        raise DataError(bundle_path, _first_problem(err)) from err
    preprocess, generator_preprocess = spec.preprocess, spec.generator_preprocess
    parts = {kind: part.file for kind, part in spec.parts.items()}
    if generator_preprocess is not None and generator_preprocess.size % preprocess.size:
        raise DataError(bundle_path, f"generator_preprocess size {generator_preprocess.size} is not a whole multiple "
                        f"of the grader's preprocess size {preprocess.size}")
    if "grader" not in parts and "generator" not in parts:
        raise DataError(bundle_path, "bundle has neither a generator nor a grader")
    models = {kind: load_model(root / part.file, device, part.sha256, bundle_path) for kind, part in spec.parts.items()}
    generator, grader = models.get("generator"), models.get("grader")
    if grader is not None and (grader.config.mode != "ori" or grader.config.lesion_stats) and generator is None:
        need = "lesion_stats" if grader.config.mode == "ori" else f"mode {grader.config.mode!r}"
        raise DataError(bundle_path, f"grader {need} needs the generator, which is missing")
    return Bundle(generator, grader, preprocess, info, root, generator_preprocess, spec.referable,
                  spec.min_fov_fraction)


def bundle_fingerprint(bundle: Bundle) -> str:
    """First 16 hex digits of the sha256 of ``bundle.json`` and every part's weights and metadata."""
    files = [bundle.root / BUNDLE_FILE]
    for part in bundle.info["parts"].values():
        files.extend(checkpoint_paths(bundle.root / part["file"]))
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]
