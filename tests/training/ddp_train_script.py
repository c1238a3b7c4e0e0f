"""Run by test_ddp.py under ``torchrun``: trains, records each rank's final weights, every file it wrote and the
size of every batch its steps received."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from safetensors.torch import save_file

from drcollab.config import load_config
from drcollab.models.checkpoint import unwrap
from drcollab.training import stages, trainer
from drcollab.training.config import TrainConfig
from drcollab.training.steps import JointBatch

config_path, out, probe = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
rank = int(os.environ["RANK"])
writes = probe / f"writes-rank{rank}.txt"
batches = probe / f"batches-rank{rank}.txt"
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


def recording(stage, step):
    """``step`` that first writes ``stage images [pixel images]`` of the batches it gets to ``batches``."""

    def wrapped(nets, batch, *args, **kwargs):
        parts = [batch.image, batch.pixel] if isinstance(batch, JointBatch) else [batch]  # joint: X^I then X^P
        sizes = [str(len(b["image"])) for b in parts if b is not None]
        with batches.open("a") as f:
            f.write(f"{stage} {' '.join(sizes)}\n")
        return step(nets, batch, *args, **kwargs)

    return wrapped


os.replace = recording_replace
trainer.finish_stage = finish_and_dump
stages.seg_step = recording("seg_pretrain", stages.seg_step)
stages.grade_step = recording("grade_pretrain", stages.grade_step)
stages.joint_step = recording("joint", stages.joint_step)
trainer.run_training(load_config(TrainConfig, config_path), out)
