"""``joint_start`` rebuilds the networks stage 2 began with (what benchmarks/pseudo_mask_stats.py measures)."""

from __future__ import annotations

import torch
from training_helpers import tiny_config

from drcollab.training import stages, trainer
from drcollab.training.trainer import run_training


def test_joint_start_rebuilds_the_networks_stage_2_started_from(synth_root, tmp_path, monkeypatch) -> None:
    cfg = tiny_config(synth_root, tmp_path / "cache", joint={"epochs": 1, "max_steps_per_epoch": 1})
    started = {}
    real_run_stage = stages.run_stage

    def recording(ctx, stage, nets, data):  # noqa: ANN001, ANN202
        if stage == "joint":
            started.update({k: {n: t.clone() for n, t in getattr(nets, k).state_dict().items()}
                            for k in ("generator", "grader")})
        return real_run_stage(ctx, stage, nets, data)

    monkeypatch.setattr(trainer, "run_stage", recording)
    run = tmp_path / "run"
    run_training(cfg, run)
    torch.manual_seed(stages.stage_seed(cfg, "joint"))
    generator, grader = stages.joint_start(cfg, run / "models/seg_pretrain/generator",
                                           run / "models/grade_pretrain/grader")
    for kind, model in (("generator", generator), ("grader", grader)):
        rebuilt = model.state_dict()
        assert rebuilt.keys() == started[kind].keys()
        for name, value in started[kind].items():
            assert torch.equal(rebuilt[name], value), f"{kind}.{name}"
    end = stages.load_model(run / "models/joint/grader").state_dict()
    assert any(not torch.equal(end[n], v) for n, v in started["grader"].items())  # the stage did move it
