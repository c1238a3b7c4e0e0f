"""The epoch loop every stage shares: progress bar, logging, checkpoints, NaN guard, clean stop."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import torch
from tqdm import tqdm

from drcollab.distributed import DistInfo, mean_across_ranks
from drcollab.errors import TrainingError
from drcollab.training.config import TrainConfig
from drcollab.training.run_folder import RunFolder
from drcollab.training.state import save_state
from drcollab.training.steps import Nets, NonFiniteLoss


@dataclass
class Position:
    """Where a run is: the stage, the epoch in it, the batches done in that epoch, the steps done in the run."""

    stage: str
    epoch: int = 0
    step: int = 0
    global_step: int = 0
    completed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("stage", "epoch", "step", "global_step", "completed")}


@dataclass
class Context:
    """What the stages share: config, process info, run folder, precision settings, position."""

    cfg: TrainConfig
    dist: DistInfo
    folder: RunFolder
    autocast: Callable[[], Any]
    channels_last: bool
    position: Position
    stop_requested: bool = False

    def checkpoint(self, nets: Nets) -> None:
        """Write the training state (rank 0), atomically; every rank waits for nothing."""
        if not self.dist.is_main:
            return
        models = {k: getattr(nets, k) for k in ("generator", "grader", "discriminator") if getattr(nets, k) is not None}
        opts = {k: getattr(nets, f"opt_{k}") for k in models if getattr(nets, f"opt_{k}") is not None}
        meta = {"position": self.position.as_dict(), "config": self.cfg.model_dump(mode="json"), "time": time.time()}
        save_state(self.folder.state_path, models, opts, meta)


class StopOnSignal:
    """Turn SIGINT/SIGTERM into a flag checked between steps, so a stop never lands mid-update."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.ctx.stop_requested:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self.ctx.stop_requested = True

    def __enter__(self) -> StopOnSignal:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def run_epochs(
    ctx: Context,
    nets: Nets,
    batches: Callable[[int, int], Iterator[tuple]],
    steps_per_epoch: int,
    step: Callable[..., dict[str, float]],
    validate: Callable[[], dict[str, float]],
) -> None:
    """Train the current stage from ``ctx.position`` to its last epoch.

    Args:
        batches: ``(epoch, start_step) -> iterator`` of argument tuples for ``step``, starting at
            batch ``start_step`` of ``epoch``; it must be a pure function of its arguments.
        steps_per_epoch: Steps in every epoch.
        step: ``step(*args, epoch=...) -> losses``: one optimisation step.
        validate: Metrics on the validation fold after each epoch (rank 0; may return {}).
    """
    pos, rt = ctx.position, ctx.cfg.runtime
    epochs = ctx.cfg.stage(pos.stage).epochs
    while pos.epoch < epochs:
        bar = tqdm(
            total=steps_per_epoch, initial=pos.step, desc=f"{pos.stage} {pos.epoch + 1}/{epochs}",
            disable=not (rt.progress and ctx.dist.is_main), dynamic_ncols=True, leave=False,
        )
        for args in batches(pos.epoch, pos.step) if pos.step < steps_per_epoch else ():
            args = tuple(_to_device(a, ctx.dist.device, ctx.channels_last) for a in args)
            try:
                losses = step(*args, epoch=pos.epoch)
            except NonFiniteLoss as err:
                raise TrainingError(
                    f"stage {pos.stage}, epoch {pos.epoch + 1}, step {pos.step + 1}: {err}. The run stopped; "
                    f"the last good checkpoint is {ctx.folder.state_path} (resume with --resume after fixing "
                    "the cause, e.g. a lower learning rate or amp: off)"
                ) from err
            pos.step += 1
            pos.global_step += 1
            bar.update(1)
            bar.set_postfix({k: f"{v:.4f}" for k, v in losses.items()})
            if pos.global_step % rt.log_every == 0:
                losses = mean_across_ranks(losses, ctx.dist.device)
                train_logs = {f"train/{k}": v for k, v in losses.items()}
                ctx.folder.log(pos.stage, pos.epoch, pos.step, pos.global_step, train_logs)
            if pos.global_step % rt.checkpoint_every == 0 or ctx.stop_requested:
                ctx.checkpoint(nets)
            if ctx.stop_requested:
                raise KeyboardInterrupt(f"stopped at stage {pos.stage}, epoch {pos.epoch + 1}, step {pos.step}")
            if pos.step >= steps_per_epoch:
                break
        bar.close()
        due = (pos.epoch + 1) % rt.validate_every == 0 or pos.epoch + 1 == epochs
        metrics = validate() if ctx.dist.is_main and due else {}
        ctx.folder.log(pos.stage, pos.epoch, pos.step, pos.global_step, {f"val/{k}": v for k, v in metrics.items()})
        if metrics and ctx.dist.is_main:
            shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
            tqdm.write(f"{pos.stage} epoch {pos.epoch + 1}/{epochs}: {shown}")
        pos.epoch, pos.step = pos.epoch + 1, 0
        ctx.checkpoint(nets)


def _to_device(batch: dict | None, device: torch.device, channels_last: bool) -> dict | None:
    if batch is None:
        return None
    out = {}
    for k, v in batch.items():
        if torch.is_tensor(v):
            v = v.to(device, non_blocking=True)
            if channels_last and v.dim() == 4:
                v = v.contiguous(memory_format=torch.channels_last)
        out[k] = v
    return out
