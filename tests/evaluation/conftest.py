"""Session-wide tiny bundle and synthetic set for the evaluation tests (written once, read-only afterwards)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import write_tiny_bundle


@pytest.fixture(scope="session")
def eval_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random bundle (G + attention grader at 64 px)."""
    return write_tiny_bundle(tmp_path_factory.mktemp("bundle") / "model")


@pytest.fixture(scope="session")
def eval_synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six synthetic 96-px images, all with masks and grades (generic layout)."""
    from drcollab.data.synthetic import write_synthetic

    return write_synthetic(tmp_path_factory.mktemp("synth") / "set", n=6, size=96, seed=3, progress=False)
