"""Shared fixtures: the real IDRiD training split, seeded RNGs, small synthetic data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def find_idrid_root() -> Path | None:
    """The IDRiD training split: $DRCOLLAB_IDRID, else ../shared/data/IDRiD beside the repo."""
    candidates = [os.environ.get("DRCOLLAB_IDRID"), REPO.parent / "shared/data/IDRiD", "/work/shared/data/IDRiD"]
    for c in candidates:
        if c and (Path(c) / "A. Segmentation").is_dir():
            return Path(c)
    return None


@pytest.fixture(scope="session")
def idrid_root() -> Path:
    root = find_idrid_root()
    if root is None:
        pytest.skip("IDRiD training split not found: set DRCOLLAB_IDRID or place it at ../shared/data/IDRiD")
    return root


def write_tiny_bundle(root: Path, grader_mode: str = "attention", size: int = 64) -> Path:
    """A randomly initialised but complete model bundle (tiny widths), as ``drcollab train`` writes one."""
    import json

    from drcollab.config import GeneratorConfig, GraderConfig, PreprocessConfig
    from drcollab.models import LesionGenerator, LesionGrader, save_model

    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    root.mkdir(parents=True, exist_ok=True)
    save_model(LesionGenerator(GeneratorConfig(widths=(4, 8, 8, 16, 16))), root / "generator")
    save_model(LesionGrader(GraderConfig(mode=grader_mode, backbone="resnet18", att_channels=8)), root / "grader")
    bundle = {
        "name": "tiny",
        "parts": {"generator": {"file": "generator"}, "grader": {"file": "grader"}},
        "preprocess": PreprocessConfig(size=size).model_dump(mode="json"),
    }
    (root / "bundle.json").write_text(json.dumps(bundle))
    return root


@pytest.fixture
def tiny_bundle(tmp_path: Path) -> Path:
    """Path of a tiny random model bundle (G + attention grader, 64 px preprocessing)."""
    return write_tiny_bundle(tmp_path / "model")
