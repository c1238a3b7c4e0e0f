"""Run by test_ddp.py under ``torchrun``: trains, records each rank's final weights and every file it wrote."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from safetensors.torch import save_file

from drcollab.config import load_config
from drcollab.models.checkpoint import unwrap
from drcollab.training import stages, trainer
from drcollab.training.config import TrainConfig

config_path, out, probe = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
rank = int(os.environ["RANK"])
writes = probe / f"writes-rank{rank}.txt"
real_replace = os.replace


def recording_replace(src, dst, *args, **kwargs):  # every atomic write of drcollab ends in os.replace
    with writes.open("a") as f:
        f.write(f"{dst}\n")
    return real_replace(src, dst, *args, **kwargs)


real_finish = stages.finish_stage


def finish_and_dump(ctx, stage, nets):
    for kind in stages.KINDS:
        model = getattr(nets, kind)
        if model is not None:
            # Parameters only: BN running statistics are per-rank (DDP re-broadcasts rank 0's at each forward).
            state = {k: v.detach().cpu().contiguous() for k, v in unwrap(model).named_parameters()}
            save_file(state, str(probe / f"{stage}-{kind}-rank{rank}.safetensors"))
    real_finish(ctx, stage, nets)


os.replace = recording_replace
trainer.finish_stage = finish_and_dump
trainer.run_training(load_config(TrainConfig, config_path), out)
