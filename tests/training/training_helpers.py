"""Tiny training configs and gradient probes for the training tests (importable as ``training_helpers``)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import torch

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


NETWORKS = ("generator", "grader", "discriminator")


def reached(loss: torch.Tensor, nets: Any, kinds: tuple[str, ...] = NETWORKS) -> set[str]:
    """The networks of ``nets`` (a ``training.steps.Nets``) whose parameters get a non-zero gradient from ``loss``."""
    out = set()
    for kind in kinds:
        params = list(getattr(nets, kind).parameters())
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        if any(gr is not None and gr.abs().sum() > 0 for gr in grads):
            out.add(kind)
    return out


def logged(run: Path, key: str) -> dict[str, float]:
    """``{stage: value}`` of ``key`` in the run's metrics.csv (the last logged value of each stage)."""
    return {r["stage"]: float(r["value"]) for r in csv.DictReader((run / "metrics.csv").open()) if r["key"] == key}
