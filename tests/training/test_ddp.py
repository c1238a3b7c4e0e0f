"""Two DDP processes (gloo, CPU) under torchrun: identical weights on both ranks, checkpoints from rank 0 only."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from training_helpers import tiny_config

from drcollab.config import dump_config

SCRIPT = Path(__file__).with_name("ddp_train_script.py")


def test_two_ranks_end_identical_and_only_rank0_writes(synth_root, tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    if torchrun is None:
        pytest.skip("torchrun not installed beside this Python")
    cfg = tiny_config(synth_root, tmp_path / "cache", runtime={"deterministic": False})
    config_path = tmp_path / "config.yaml"
    config_path.write_text(dump_config(cfg))
    probe = tmp_path / "probe"
    probe.mkdir()
    out = tmp_path / "run"
    cmd = [torchrun, "--standalone", "--nproc_per_node=2", str(SCRIPT), str(config_path), str(out), str(probe)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    for stage, kinds in [("seg_pretrain", ["generator"]), ("grade_pretrain", ["grader"]),
                         ("joint", ["generator", "grader", "discriminator"])]:
        for kind in kinds:
            a = load_file(probe / f"{stage}-{kind}-rank0.safetensors")
            b = load_file(probe / f"{stage}-{kind}-rank1.safetensors")
            assert a.keys() == b.keys()
            for key in a:
                assert torch.allclose(a[key].float(), b[key].float(), atol=1e-6), (stage, kind, key)

    rank0 = (probe / "writes-rank0.txt").read_text().split()
    assert any(p.endswith("checkpoints/last.safetensors") for p in rank0)
    assert any(p.endswith("model/bundle.json") for p in rank0)
    rank1 = (probe / "writes-rank1.txt").read_text().split() if (probe / "writes-rank1.txt").exists() else []
    # The preprocessing cache is shared and safe for concurrent writers; the run folder is rank 0's alone.
    assert not [p for p in rank1 if Path(p).is_relative_to(out)], rank1


def test_cpu_processes_relaunch_training_as_single_threaded_ranks(synth_root, tmp_path):
    from drcollab.training.trainer import run_training

    cfg = tiny_config(synth_root, tmp_path / "cache", runtime={"cpu_processes": 2, "threads": None, "device": "cpu"})
    bundle = run_training(cfg, tmp_path / "run")
    assert (bundle / "bundle.json").is_file()
    config = (tmp_path / "run/config.yaml").read_text()
    assert "cpu_processes: 2" in config
    assert (tmp_path / "run/models/joint/discriminator.safetensors").is_file()
