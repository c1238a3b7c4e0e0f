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
