"""Shared fixtures: the real IDRiD training split, seeded RNGs, small synthetic data."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from helpers import write_tiny_bundle

REPO = Path(__file__).resolve().parents[1]


def find_idrid_root() -> Path | None:
    """The IDRiD training split: $DRCOLLAB_IDRID, else ../shared/data/IDRiD beside the repo."""
    candidates = [os.environ.get("DRCOLLAB_IDRID"), REPO.parent / "shared/data/IDRiD", "/work/shared/data/IDRiD"]
    for c in candidates:
        if c and (Path(c) / "A. Segmentation").is_dir():
            return Path(c)
    return None


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread per test: the tiny test models gain nothing from more, and on a loaded
    2-core machine OpenMP spin-waiting makes them many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True, scope="session")
def own_cache_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Measured engine choices and exported graphs go to a folder of the test run, never the user's cache.
    (Subprocesses the tests start inherit it through the environment.)"""
    before = os.environ.get("DRCOLLAB_CACHE_HOME")
    os.environ["DRCOLLAB_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache_home"))
    yield
    if before is None:
        os.environ.pop("DRCOLLAB_CACHE_HOME", None)
    else:
        os.environ["DRCOLLAB_CACHE_HOME"] = before


@pytest.fixture(scope="session")
def idrid_root() -> Path:
    root = find_idrid_root()
    if root is None:
        pytest.skip("IDRiD training split not found: set DRCOLLAB_IDRID or place it at ../shared/data/IDRiD")
    return root


def shared_set(env: str, folder: str, marker: str) -> Path:
    """A real data set: ``$env``, else ``../shared/data/<folder>`` beside the repo; skips the test without it."""
    candidates = [os.environ.get(env), REPO.parent / "shared/data" / folder, Path("/work/shared/data") / folder]
    root = next((Path(c) for c in candidates if c and (Path(c) / marker).exists()), None)
    if root is None:
        pytest.skip(f"{folder} not found: set {env} or place it at ../shared/data/{folder}")
    return root


@pytest.fixture(scope="session")
def messidor2_root() -> Path:
    return shared_set("DRCOLLAB_MESSIDOR2", "Messidor-2", "messidor_data.csv")


@pytest.fixture(scope="session")
def eyepacs_root() -> Path:
    return shared_set("DRCOLLAB_EYEPACS", "EyePACS-256", "trainLabels.csv")


@pytest.fixture
def tiny_bundle(tmp_path: Path) -> Path:
    """Path of a tiny random model bundle (G + attention grader, 64 px preprocessing)."""
    return write_tiny_bundle(tmp_path / "model")
