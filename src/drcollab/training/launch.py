"""Data-parallel processes on one CPU machine: ``runtime.cpu_processes`` single-threaded DDP ranks.

On a CPU, two single-threaded processes, each with half the batch, finish a step of these networks
a little sooner than one process with two threads (7 % on 2 cores, BENCHMARKS.md,
``benchmarks/bench_train_step.py``), and data loading stays off the training threads.
``run_training`` therefore re-launches itself under ``torchrun --standalone`` with one thread per
process when ``runtime.cpu_processes`` > 1, exactly as a user would for GPUs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from drcollab.errors import TrainingError
from drcollab.training.config import TrainConfig


def should_launch(cfg: TrainConfig) -> bool:
    """True in the user's process when the config asks for several CPU processes (not inside torchrun)."""
    if cfg.runtime.cpu_processes <= 1 or "WORLD_SIZE" in os.environ:
        return False
    device = cfg.runtime.device
    return device == "cpu" or (device == "auto" and not torch.cuda.is_available())


def launch(out: Path, processes: int, changes: list[str] | None = None) -> Path:
    """Run ``drcollab train`` on ``out`` in ``processes`` DDP ranks and wait for them.

    The caller has already written ``out/config.yaml`` (or ``out`` holds a checkpoint): the ranks
    start from the folder alone, with ``--resume`` and the resume's ``changes`` when a checkpoint exists.

    Raises:
        TrainingError: a rank failed (its own message is above, on stderr).
        KeyboardInterrupt: after the ranks saved their state and stopped.
    """
    resume = (out / "checkpoints/last.safetensors").is_file()
    if resume:
        args = ["--resume", str(out), *(changes or [])]
    else:
        args = ["--config", str(out / "config.yaml"), "--out", str(out)]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
           "-m", "drcollab.cli", "train", *args]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    proc = subprocess.Popen(cmd, env=env)
    try:
        code = proc.wait()
    except KeyboardInterrupt:
        proc.wait()  # torchrun passes the signal on; the ranks save their state between steps
        raise
    if code == 130:
        raise KeyboardInterrupt(f"training processes stopped; resume with drcollab train --resume {out}")
    if code != 0:
        raise TrainingError(f"{processes} training processes on {out} exited with code {code} (see above)")
    return out / "model"
