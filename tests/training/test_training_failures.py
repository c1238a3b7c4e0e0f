"""``drcollab train`` fails early and in one line: bad values and too little data before the run folder is
claimed, damaged states, read-only folders and full disks named; a kill mid-write leaves nothing behind."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from training_helpers import tiny_config
from typer.testing import CliRunner

from drcollab.cli import app
from drcollab.config import dump_config
from drcollab.models import LesionGenerator, save_model
from drcollab.training.run_folder import CSV_FIELDS, RunFolder
from drcollab.training.state import save_state
from drcollab.training.trainer import run_training


def train_cli(*args: str | Path):
    return CliRunner().invoke(app, ["train", *map(str, args)])


def one_error_line(output: str) -> str:
    """The error: one line (progress bars and the precision line of a run that started may precede it)."""
    lines = output.strip().splitlines()
    assert lines[-1].startswith("error: ") and "Traceback" not in output, output
    return lines[-1]


@pytest.fixture
def config_file(synth_root: Path, tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(dump_config(tiny_config(synth_root, tmp_path / "cache", joint={"epochs": 0})))
    return path


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        (["data.val_fold=9"], "data.val_fold 9 must be below data.n_folds 4"),
        (["seg_pretrain.augment.crop=128"], "seg_pretrain.augment.crop 128 is larger than the 64 px images"),
        (["seg_pretrain.augment.crop=40"], "seg_pretrain.augment.crop 40 must be a multiple of 16"),
        (["data.n_folds=13"], "data.pixel holds 12 images with lesion masks, too few for data.n_folds 13"),
        (["seg_pretrain.epochs=0", "grade_pretrain.epochs=0"], "nothing would be trained"),
    ],
    ids=["val-fold", "crop-too-large", "crop-not-16", "too-few-masked", "all-epochs-0"],
)
def test_values_that_cannot_run_are_refused_before_the_run_folder_is_claimed(
    config_file: Path, tmp_path: Path, overrides: list[str], field: str
) -> None:
    run = tmp_path / "run"
    result = train_cli("--config", config_file, "--out", run, *overrides)
    assert result.exit_code == 2 and field in one_error_line(result.output)
    assert not run.exists()


@pytest.mark.parametrize("broken", ["config", "run folder config"])
def test_a_yaml_syntax_error_is_one_line_naming_the_file_and_line(config_file: Path, tmp_path: Path,
                                                                   broken: str) -> None:
    run = tmp_path / "run"
    bad = config_file if broken == "config" else run / "config.yaml"
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_text("name: tiny\njoint: {epochs: 2\nseed: 1\n")
    result = train_cli("--config", config_file, "--out", run)
    line = one_error_line(result.output)
    assert result.exit_code == 2 and line.startswith(f"error: {bad}: not valid YAML: line 2, column 8: "), line


def _state(path: Path) -> None:
    model = torch.nn.Linear(2, 2)
    save_state(path, {"generator": model}, {}, {"position": {"stage": "seg_pretrain"}, "config": {}})


@pytest.mark.parametrize("damage", ["truncated", "random"])
def test_resuming_from_a_damaged_state_is_one_line_naming_it(tmp_path: Path, damage: str) -> None:
    state = tmp_path / "run/checkpoints/last.safetensors"
    _state(state)
    data = state.read_bytes()
    state.write_bytes(data[: len(data) // 2] if damage == "truncated" else os.urandom(len(data)))
    result = train_cli("--resume", tmp_path / "run")
    line = one_error_line(result.output)
    assert result.exit_code == 2 and str(state) in line and "not a readable drcollab training state" in line


def _failing_replace(target: str, code: int):  # noqa: ANN202
    real = os.replace

    def replace(src: str | Path, dst: str | Path) -> None:
        if Path(dst).name == target:
            raise OSError(code, os.strerror(code), str(dst))
        real(src, dst)

    return replace


def test_a_read_only_run_folder_is_one_line_naming_it(
    config_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "replace", _failing_replace("config.yaml", errno.EROFS))
    result = train_cli("--config", config_file, "--out", tmp_path / "run")
    line = one_error_line(result.output)
    assert result.exit_code == 2 and "config.yaml" in line and "choose a folder you can write to" in line


def test_a_full_disk_while_checkpointing_is_one_line_saying_how_to_continue(
    config_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    real = os.replace
    calls = {"n": 0}

    def replace(src: str | Path, dst: str | Path) -> None:  # the second state write finds the disk full
        calls["n"] += Path(dst).name == "last.safetensors"
        if calls["n"] == 2 and Path(dst).name == "last.safetensors":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    result = train_cli("--config", config_file, "--out", run)
    line = one_error_line(result.output)
    assert result.exit_code == 2 and "last.safetensors" in line and "No space left on device" in line
    assert f"drcollab train --resume {run}" in line
    assert not [p.name for p in run.rglob("*.tmp")]


KILL_ON_SECOND_STATE_WRITE = """
import os, signal, sys
from pathlib import Path
real, writes = os.replace, []
def replace(src, dst):
    if Path(dst).name == "last.safetensors":
        writes.append(dst)
        if len(writes) == 2:  # the temporary file is complete, the rename has not happened: kill now
            os.kill(os.getpid(), signal.SIGKILL)
    real(src, dst)
os.replace = replace
from drcollab.cli import app
app(["train", "--config", sys.argv[1], "--out", sys.argv[2]])
"""


def test_a_sigkill_during_a_checkpoint_write_leaves_no_orphan_after_the_next_start(
    synth_root: Path, tmp_path: Path
) -> None:
    cfg = tiny_config(synth_root, tmp_path / "cache", grade_pretrain={"epochs": 0}, joint={"epochs": 0})
    config = tmp_path / "config.yaml"
    config.write_text(dump_config(cfg))
    run = tmp_path / "run"
    old_umask = os.umask(0o022)
    try:
        proc = subprocess.run([sys.executable, "-c", KILL_ON_SECOND_STATE_WRITE, str(config), str(run)],
                              capture_output=True, timeout=300)
        assert proc.returncode == -9, proc.stderr.decode()[-2000:]
        assert [p.name for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]  # the orphan
        run_training(None, run, resume=True)
    finally:
        os.umask(old_umask)
    left = [p.relative_to(run) for p in run.rglob(".*") if p.is_file()]
    assert left == []
    for path in (run / "checkpoints/last.safetensors", run / "models/seg_pretrain/generator.safetensors"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path  # like any file under umask 022, not 0600


def test_saved_models_get_the_usual_file_mode(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        weights, meta = save_model(LesionGenerator(), tmp_path / "generator")
    finally:
        os.umask(old_umask)
    assert {stat.S_IMODE(p.stat().st_mode) for p in (weights, meta)} == {0o644}


def test_a_half_written_metrics_row_does_not_survive_a_resume(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    rows = [f"1.0,seg_pretrain,0,{s},{s},train/bce,0.5\n" for s in (1, 2)]
    # a killed run: a row cut inside a field, then one cut after its last field's first digits
    cut = "1.0,seg_pretrain,0,3,3,train/b\n1.0,seg_pretrain,0,3,3,train/bce,0.1"
    text = ",".join(CSV_FIELDS) + "\n" + "".join(rows) + cut
    folder.metrics_path.write_text(text)
    folder.truncate_metrics(global_step=5)
    assert folder.metrics_path.read_text().replace("\r\n", "\n") == ",".join(CSV_FIELDS) + "\n" + "".join(rows)
