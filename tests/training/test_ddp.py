"""DDP processes (gloo, CPU) under torchrun: global batches split over the ranks, identical weights on every rank,
files from rank 0 only; 2 ranks on a tiny config, 8 ranks on every configs/paper/ row (slow)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from training_helpers import tiny_config

from drcollab.config import deep_merge, dump_config, load_config
from drcollab.training.config import TrainConfig

SCRIPT = Path(__file__).with_name("ddp_train_script.py")
PAPER = Path(__file__).resolve().parents[2] / "configs/paper"
KINDS = {"seg_pretrain": ["generator"], "grade_pretrain": ["grader"], "joint": ["generator", "grader", "discriminator"]}


def run_ranks(cfg: TrainConfig, ranks: int, tmp_path: Path) -> tuple[Path, Path]:
    """Train ``cfg`` in ``ranks`` gloo processes under torchrun; returns (run folder, probe folder)."""
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    if torchrun is None:
        pytest.skip("torchrun not installed beside this Python")
    config_path = tmp_path / "config.yaml"
    config_path.write_text(dump_config(cfg))
    probe = tmp_path / "probe"
    probe.mkdir()
    out = tmp_path / "run"
    cmd = [torchrun, "--standalone", f"--nproc_per_node={ranks}", str(SCRIPT), str(config_path), str(out), str(probe)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    return out, probe


def check_ranks(cfg: TrainConfig, ranks: int, out: Path, probe: Path) -> None:
    """Each stage's steps got global batch / ranks images on every rank, weights agree, only rank 0 wrote."""
    j = cfg.joint
    expected = {"seg_pretrain": [cfg.seg_pretrain.batch_size // ranks],
                "grade_pretrain": [cfg.grade_pretrain.batch_size // ranks],
                "joint": [j.batch_size // ranks] + ([(j.pixel_batch_size or j.batch_size) // ranks]
                                                    if j.train_generator else [])}
    ran = [s for s in KINDS if cfg.stage(s).epochs]
    for rank in range(ranks):
        lines = (probe / f"batches-rank{rank}.txt").read_text().splitlines()
        seen = Counter(line.split()[0] for line in lines)
        assert sorted(seen) == sorted(ran), (rank, seen)
        for line in lines:
            stage, *sizes = line.split()
            assert [int(n) for n in sizes] == expected[stage], (rank, line)
    for stage in ran:
        for kind in KINDS[stage]:
            if not (probe / f"{stage}-{kind}-rank0.safetensors").is_file():
                continue  # e.g. no discriminator without the adversarial term
            a = load_file(probe / f"{stage}-{kind}-rank0.safetensors")
            for rank in range(1, ranks):
                b = load_file(probe / f"{stage}-{kind}-rank{rank}.safetensors")
                assert a.keys() == b.keys()
                for key in a:
                    assert torch.allclose(a[key].float(), b[key].float(), atol=1e-6), (stage, kind, key, rank)

    rank0 = (probe / "writes-rank0.txt").read_text().split()
    assert any(p.endswith("checkpoints/last.safetensors") for p in rank0)
    assert any(p.endswith("model/bundle.json") for p in rank0)
    for rank in range(1, ranks):
        path = probe / f"writes-rank{rank}.txt"
        others = path.read_text().split() if path.exists() else []
        # The preprocessing cache is shared and safe for concurrent writers; the run folder is rank 0's alone.
        assert not [p for p in others if Path(p).is_relative_to(out)], (rank, others)


def test_two_ranks_share_global_batches_end_identical_and_only_rank0_writes(synth_root, tmp_path):
    # Global batches 4 / 8 / 4 + 4: each rank's steps take 2 / 4 / 2 + 2 images.
    cfg = tiny_config(synth_root, tmp_path / "cache", runtime={"deterministic": False},
                      seg_pretrain={"batch_size": 4}, grade_pretrain={"batch_size": 8},
                      joint={"batch_size": 4, "pixel_batch_size": 4})
    out, probe = run_ranks(cfg, 2, tmp_path)
    check_ranks(cfg, 2, out, probe)
    # Both ranks filled part of the (initially empty) cache: the fill is shared, not rank 0's alone.
    for rank in (0, 1):
        written = (probe / f"writes-rank{rank}.txt").read_text().split()
        assert any(Path(p).is_relative_to(tmp_path / "cache") and p.endswith(".npz") for p in written), rank


def test_two_ranks_with_the_stage_2_recipe_end_identical(synth_root, tmp_path):
    """The recipe's D update runs G without gradient (and D's real view beside X^I); the ranks must still agree."""
    joint = {"batch_size": 4, "pixel_batch_size": 4, "zero_absent": True, "pseudo_mask": "refined"}
    cfg = tiny_config(synth_root, tmp_path / "cache", runtime={"deterministic": False},
                      seg_pretrain={"batch_size": 4}, grade_pretrain={"batch_size": 8}, joint=joint,
                      grader={"attention_init": "masks"}, discriminator={"sees_image": False})
    out, probe = run_ranks(cfg, 2, tmp_path)
    check_ranks(cfg, 2, out, probe)
    assert "train/adv" in (out / "metrics.csv").read_text()


def toy_paper_row(row: str, data_root: Path, cache: Path) -> TrainConfig:
    """A configs/paper/ row at 64 px with tiny networks and one or two steps per stage: global batches 16."""
    cfg = load_config(TrainConfig, PAPER / f"{row}.yaml")
    tree = deep_merge(cfg.model_dump(mode="json"), {
        "data": {"pixel": [{"format": "generic", "root": str(data_root)}],
                 "image": [{"format": "generic", "root": str(data_root)}],
                 "preprocess": {"size": 64}, "cache_dir": str(cache), "workers": 0, "n_folds": 4},
        "generator": {"widths": [4, 8, 8, 16, 16]},
        "discriminator": {"widths": [4, 8, 8, 16, 16]},
        "grader": {"backbone": "resnet18", "att_channels": 8},
        "seg_pretrain": {"batch_size": 16, "max_steps_per_epoch": 1, "augment": {"crop": 32}},
        "grade_pretrain": {"batch_size": 16, "max_steps_per_epoch": 1},
        "joint": {"batch_size": 16, "max_steps_per_epoch": 2},
        "runtime": {"device": "cpu", "threads": 1, "progress": False, "checkpoint_every": 1, "log_every": 1},
    })
    for stage in KINDS:
        tree[stage]["epochs"] = min(tree[stage]["epochs"], 1)
    return TrainConfig.model_validate(tree)


@pytest.fixture(scope="module")
def synth_48(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """48 synthetic images, half with masks: 18 X^P and 36 X^I training images, enough for global batches of 16."""
    from drcollab.data.synthetic import write_synthetic

    return write_synthetic(tmp_path_factory.mktemp("synth48") / "set", n=48, size=96, seed=1, pixel_fraction=0.5,
                           progress=False)


@pytest.mark.slow
@pytest.mark.parametrize("row", sorted(p.stem for p in PAPER.glob("*.yaml") if p.stem != "base"))
def test_every_paper_row_on_eight_ranks(row, synth_48, tmp_path):
    cfg = toy_paper_row(row, synth_48, tmp_path / "cache")
    out, probe = run_ranks(cfg, 8, tmp_path)
    check_ranks(cfg, 8, out, probe)


def test_cpu_processes_relaunch_training_as_single_threaded_ranks(synth_root, tmp_path):
    from drcollab.training.trainer import run_training

    cfg = tiny_config(synth_root, tmp_path / "cache", runtime={"cpu_processes": 2, "threads": None, "device": "cpu"},
                      seg_pretrain={"batch_size": 4}, joint={"batch_size": 4})
    bundle = run_training(cfg, tmp_path / "run")
    assert (bundle / "bundle.json").is_file()
    config = (tmp_path / "run/config.yaml").read_text()
    assert "cpu_processes: 2" in config
    assert (tmp_path / "run/models/joint/discriminator.safetensors").is_file()
