"""A tiny synthetic set that runs every training stage in seconds (configs: training_helpers.tiny_config)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 synthetic 96-px fundus images, half with masks, written once per session."""
    from drcollab.data.synthetic import write_synthetic

    root = tmp_path_factory.mktemp("synth") / "set"
    return write_synthetic(root, n=24, size=96, seed=0, pixel_fraction=0.5, progress=False)
