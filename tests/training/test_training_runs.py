"""End-to-end training runs on tiny synthetic data: every stage, resume after SIGKILL, NaN guard."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from training_helpers import tiny_config

from drcollab.config import dump_config
from drcollab.errors import TrainingError
from drcollab.inference.bundle import load_bundle
from drcollab.models.checkpoint import file_sha256
from drcollab.training import steps
from drcollab.training.state import read_state
from drcollab.training.trainer import run_training

FINAL = ("model/generator.safetensors", "model/grader.safetensors", "models/joint/discriminator.safetensors")


def weights(run: Path) -> dict[str, torch.Tensor]:
    out = {}
    for name in FINAL:
        out |= {f"{name}:{k}": v for k, v in load_file(run / name).items()}
    return out


def test_every_stage_writes_its_models_and_logs(synth_root, tmp_path):
    cfg = tiny_config(synth_root, tmp_path / "cache")
    bundle = run_training(cfg, tmp_path / "run")
    run = tmp_path / "run"
    parts = json.loads((bundle / "bundle.json").read_text())["parts"]
    assert parts["grader"]["stage"] == "joint"
    assert {kind: part["sha256"] for kind, part in parts.items()} == {
        kind: file_sha256(bundle / f"{kind}.safetensors") for kind in ("generator", "grader")}
    for stage, kinds in [("seg_pretrain", ["generator"]), ("grade_pretrain", ["grader"]),
                         ("joint", ["generator", "grader", "discriminator"])]:
        for kind in kinds:
            assert (run / "models" / stage / f"{kind}.safetensors").is_file()
    metrics = (run / "metrics.csv").read_text()
    for key in ("train/bce", "train/focal", "train/bce_i", "train/disc", "train/adv", "val/kappa", "val/ap_mean"):
        assert key in metrics
    _, meta = read_state(run / "checkpoints/last.safetensors")
    assert meta["position"]["completed"] == ["seg_pretrain", "grade_pretrain", "joint"]
    assert list((run / "tensorboard").iterdir())


def _start(config_path: Path, run: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "drcollab.cli", "train", *extra]
    cmd += ["--resume", str(run)] if not config_path else ["--config", str(config_path), "--out", str(run)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_sigkill_mid_stage_then_resume_equals_uninterrupted(synth_root, tmp_path):
    cfg = tiny_config(synth_root, tmp_path / "cache", joint={"epochs": 2, "max_steps_per_epoch": 8})
    config_path = tmp_path / "config.yaml"
    config_path.write_text(dump_config(cfg))
    run_training(cfg, tmp_path / "reference")

    killed = tmp_path / "killed"
    proc = _start(config_path, killed)
    state_json = killed / "checkpoints/last.json"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if state_json.is_file():
            try:
                pos = json.loads(state_json.read_text())["position"]
            except (json.JSONDecodeError, KeyError):
                pos = {}
            if pos.get("stage") == "joint" and pos.get("epoch") == 0 and pos.get("step", 0) >= 2:
                os.kill(proc.pid, signal.SIGKILL)
                break
        time.sleep(0.01)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    _, meta = read_state(killed / "checkpoints/last.safetensors")
    pos = meta["position"]
    assert pos["stage"] == "joint" and 0 < pos["step"] < 8 and "joint" not in pos["completed"]
    assert not (killed / "model").exists()

    resumed = _start(None, killed)
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read().decode()[-2000:]
    ref, got = weights(tmp_path / "reference"), weights(killed)
    assert ref.keys() == got.keys()
    for key in ref:
        assert torch.equal(ref[key], got[key]), key  # deterministic CPU mode: bit-identical


def test_nan_loss_stops_with_stage_epoch_step_and_keeps_last_good_checkpoint(synth_root, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = steps.focal_loss

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls["n"] == 2 else loss

    monkeypatch.setattr(steps, "focal_loss", poisoned)
    cfg = tiny_config(synth_root, tmp_path / "cache")
    with pytest.raises(TrainingError, match=r"stage grade_pretrain, epoch 1, step 2: non-finite loss focal = nan"):
        run_training(cfg, tmp_path / "run")
    _, meta = read_state(tmp_path / "run/checkpoints/last.safetensors")
    assert meta["position"] == {"stage": "grade_pretrain", "epoch": 0, "step": 1, "global_step": 3,
                                "completed": ["seg_pretrain"]}


def test_joint_stage_can_start_from_another_runs_pretrained_networks(synth_root, tmp_path):
    pre = tiny_config(synth_root, tmp_path / "cache", joint={"epochs": 0})
    run_training(pre, tmp_path / "pre")
    models = tmp_path / "pre/models"
    cfg = tiny_config(
        synth_root, tmp_path / "cache",
        seg_pretrain={"epochs": 0}, grade_pretrain={"epochs": 0},
        joint={"epochs": 1, "lr": 1e-30, "adversarial": False},  # a step too small to move float32 weights
        init={"generator": str(models / "seg_pretrain/generator"), "grader": str(models / "grade_pretrain/grader")},
    )
    bundle = run_training(cfg, tmp_path / "joint")
    assert json.loads((bundle / "bundle.json").read_text())["trained_stages"] == ["joint"]
    start = load_file(models / "seg_pretrain/generator.safetensors")
    end = load_file(bundle / "generator.safetensors")
    params = [k for k in start if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert params and all(torch.equal(start[k], end[k]) for k in params)


def test_a_dme_grader_trains_in_both_stages_and_the_rule_reaches_the_bundle(synth_root, tmp_path):
    cfg = tiny_config(synth_root, tmp_path / "cache", grader={"dme": True}, referable={"dr_min": 3, "dme_min": 2})
    bundle = run_training(cfg, tmp_path / "run")
    info = json.loads((bundle / "bundle.json").read_text())
    assert info["referable"] == {"dr_min": 3, "dme_min": 2, "threshold": 0.5}
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    dme = {r["stage"] for r in rows if r["key"] == "train/dme"}
    assert dme == {"grade_pretrain", "joint"}  # the synthetic labels.csv gives every image a DME risk
    grader = load_bundle(bundle).grader
    assert grader.dme_classifier is not None and grader.config.mode == "attention"


@pytest.mark.parametrize("two_sizes", [False, True], ids=["one size", "two sizes"])
def test_one_and_two_sizes_train_through_the_one_stage_2_step(synth_root, tmp_path, monkeypatch, two_sizes):
    """A tiny stage 2 of the recipe at one size and at two goes through joint_losses, with the route chosen once."""
    routes = []
    real = steps.joint_losses

    def recording(nets, batch, cfg, autocast, route, real_masks):  # noqa: ANN001, ANN202
        routes.append(route)
        return real(nets, batch, cfg, autocast, route, real_masks)

    monkeypatch.setattr(steps, "joint_losses", recording)
    sizes = {"data": {"seg_size": 128}, "seg_pretrain": {"augment": {"crop": 64}}} if two_sizes else {}
    cfg = tiny_config(synth_root, tmp_path / "cache", **sizes, grade_pretrain={"epochs": 0},
                      grader={"attention_init": "masks"}, discriminator={"sees_image": False},
                      joint={"epochs": 1, "max_steps_per_epoch": 2, "pseudo_mask": "refined", "zero_absent": True,
                             "grade_to_generator": not two_sizes})
    run_training(cfg, tmp_path / "run")
    assert routes and set(routes) == {steps.TwoSizes if two_sizes else steps.OneSize}
    joint = {r["key"] for r in csv.DictReader((tmp_path / "run/metrics.csv").open()) if r["stage"] == "joint"}
    assert {"train/focal", "train/bce_p", "train/bce_i", "train/adv", "train/disc"} <= joint
