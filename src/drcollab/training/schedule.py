"""Learning-rate schedules: the paper's constant rate, or linear warm-up then cosine decay.

The rate is a pure function of the step within the stage, set on the optimizers before every step, so a resumed
run continues the schedule exactly with no scheduler state in the checkpoint.
"""

from __future__ import annotations

import math

import torch

from drcollab.training.config import StageConfig


def lr_at(cfg: StageConfig, step: int, total: int) -> float:
    """Learning rate of step ``step`` (0-based) of a stage of ``total`` steps.

    ``constant``: ``cfg.lr`` throughout (the paper). ``cosine``: linear warm-up from ``cfg.lr / warmup_steps`` to
    ``cfg.lr`` over ``cfg.warmup_steps`` steps, then cosine decay to ``cfg.min_lr_ratio * cfg.lr`` at the last step.
    """
    if cfg.schedule == "constant":
        return cfg.lr
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, total - cfg.warmup_steps - 1)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    floor = cfg.min_lr_ratio * cfg.lr
    return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def set_lr(optimizers: list[torch.optim.Optimizer | None], lr: float) -> None:
    for opt in optimizers:
        if opt is not None:
            for group in opt.param_groups:
                group["lr"] = lr
