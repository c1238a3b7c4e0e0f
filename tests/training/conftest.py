"""Tiny synthetic data and configs that run every training stage in seconds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from drcollab.config import deep_merge
from drcollab.training.config import TrainConfig


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 synthetic 96-px fundus images, half with masks, written once per session."""
    from drcollab.data.synthetic import write_synthetic

    root = tmp_path_factory.mktemp("synth") / "set"
    return write_synthetic(root, n=24, size=96, seed=0, pixel_fraction=0.5, progress=False)


def tiny_config(data_root: Path, cache: Path, **sections: Any) -> TrainConfig:
    """A config with tiny networks at 64 px: every stage runs a few steps on one CPU thread."""
    tree: dict[str, Any] = {
        "name": "tiny",
        "data": {
            "pixel": [{"format": "generic", "root": str(data_root)}],
            "image": [{"format": "generic", "root": str(data_root)}],
            "preprocess": {"size": 64},
            "cache_dir": str(cache),
            "workers": 0,
            "n_folds": 4,
        },
        "generator": {"widths": [4, 8, 8, 16, 16]},
        "discriminator": {"widths": [4, 8, 8, 16, 16]},
        "grader": {"backbone": "resnet18", "att_channels": 8},
        "seg_pretrain": {"epochs": 1, "batch_size": 2, "max_steps_per_epoch": 2},
        "grade_pretrain": {"epochs": 1, "batch_size": 4, "max_steps_per_epoch": 2},
        "joint": {"epochs": 2, "batch_size": 2, "pixel_batch_size": 2, "max_steps_per_epoch": 3},
        "runtime": {"threads": 1, "deterministic": True, "progress": False, "checkpoint_every": 1, "log_every": 1},
    }
    return TrainConfig.model_validate(deep_merge(tree, sections))
