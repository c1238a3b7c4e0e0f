"""Tiny training configs for the training tests (importable as ``training_helpers``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drcollab.config import deep_merge
from drcollab.training.config import TrainConfig


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
