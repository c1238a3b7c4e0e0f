"""``drcollab train --resume RUN [key=value]``: the run's own config, changed only where the stored state allows;
an edited config.yaml is refused naming the fields; raised epochs are trained."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import yaml
from training_helpers import tiny_config
from typer.testing import CliRunner

from drcollab.cli import app
from drcollab.errors import ConfigError
from drcollab.models.checkpoint import file_sha256
from drcollab.training import launch
from drcollab.training.resume import reopen
from drcollab.training.state import read_state
from drcollab.training.trainer import run_training


@pytest.fixture(scope="module")
def finished(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run: one short epoch of G's pre-training, then one of the joint stage."""
    root = tmp_path_factory.mktemp("finished")
    cfg = tiny_config(synth_root, root / "cache", grade_pretrain={"epochs": 0}, joint={"epochs": 1,
                                                                                       "max_steps_per_epoch": 2})
    run_training(cfg, root / "run")
    return root / "run"


@pytest.fixture
def run(finished: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(finished, tmp_path / "run"))


def resume_cli(run: Path, *changes: str):
    return CliRunner().invoke(app, ["train", "--resume", str(run), *changes])


def edit_config(run: Path, section: str, key: str, value: object) -> None:
    tree = yaml.safe_load((run / "config.yaml").read_text())
    tree[section][key] = value
    (run / "config.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))


def last_line(output: str) -> str:
    lines = output.strip().splitlines()
    assert lines[-1].startswith("error: ") and "Traceback" not in output, output
    return lines[-1]


def test_an_edited_network_width_is_refused_naming_the_field(run: Path) -> None:
    state = (run / "checkpoints/last.safetensors").read_bytes()
    edit_config(run, "generator", "widths", [4, 8, 8, 16, 32])
    result = resume_cli(run)
    line = last_line(result.output)
    assert result.exit_code == 2
    assert line == (f"error: {run / 'config.yaml'}: generator.widths [4, 8, 8, 16, 16] -> [4, 8, 8, 16, 32] differs "
                    "from the config this run's checkpoint holds; cannot change in a run: generator.widths (the "
                    "stored weights were built for the old value); undo the edit, or start a new run with --config "
                    f"{run / 'config.yaml'} and another --out")
    assert (run / "checkpoints/last.safetensors").read_bytes() == state  # nothing trained


def test_edited_epochs_are_refused_unless_the_command_line_repeats_them(run: Path) -> None:
    edit_config(run, "joint", "epochs", 2)
    result = resume_cli(run)
    assert result.exit_code == 2
    assert last_line(result.output) == (
        f"error: {run / 'config.yaml'}: joint.epochs 1 -> 2 differs from the config this run's checkpoint holds; "
        f"undo the edit, or pass the change: drcollab train --resume {run} joint.epochs=2")


@pytest.mark.parametrize("edited", [False, True], ids=["command-line", "config.yaml-and-command-line"])
def test_raised_epochs_train_the_extra_epochs(run: Path, edited: bool) -> None:
    before = read_state(run / "checkpoints/last.safetensors")[1]["position"]
    grader = file_sha256(run / "model/grader.safetensors")
    if edited:
        edit_config(run, "joint", "epochs", 2)
    result = resume_cli(run, "joint.epochs=2")
    assert result.exit_code == 0, result.output
    _, meta = read_state(run / "checkpoints/last.safetensors")
    pos = meta["position"]
    assert (pos["stage"], pos["epoch"], pos["completed"]) == ("joint", 2, ["seg_pretrain", "joint"])
    assert pos["global_step"] == before["global_step"] + 2 and meta["config"]["joint"]["epochs"] == 2
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert {r["epoch"] for r in rows if r["stage"] == "joint" and r["key"] == "train/focal"} == {"0", "1"}
    assert yaml.safe_load((run / "config.yaml").read_text())["joint"]["epochs"] == 2
    part = json.loads((run / "model/bundle.json").read_text())["parts"]["grader"]
    assert part["sha256"] == file_sha256(run / "model/grader.safetensors") != grader  # the re-exported grader


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("generator.widths=[4,8,8,16,32]", "cannot change when resuming: generator.widths [4, 8, 8, 16, 16] -> "
         "[4, 8, 8, 16, 32] (the stored weights were built for the old value); start a new run"),
        ("joint.lr=0.001", "cannot change when resuming: joint.lr 0.0002 -> 0.001 (the stored state was trained with "
         "the old value)"),
        ("joint.epochs=0", "joint.epochs 1 -> 0: the run has already begun 1 epoch(s) of joint; keep joint.epochs "
         "at 1"),
        ("seg_pretrain.epochs=2", "seg_pretrain.epochs 1 -> 2: the run has moved on from seg_pretrain to joint"),
    ],
    ids=["network", "optimiser", "fewer-epochs", "earlier-stage"],
)
def test_changes_the_stored_state_cannot_take_are_refused(run: Path, change: str, message: str) -> None:
    config = (run / "config.yaml").read_text()
    result = resume_cli(run, change)
    line = last_line(result.output)
    assert result.exit_code == 2 and message in line, line
    assert (run / "config.yaml").read_text() == config


def test_a_misspelt_change_names_the_nearest_key(run: Path) -> None:
    result = resume_cli(run, "joint.epoch=2")
    assert result.exit_code == 2 and "joint.epoch: unknown key; did you mean 'epochs'? (got 2)" in result.output


@pytest.mark.parametrize(
    ("position", "edit", "completed"),
    [
        ({"stage": "joint", "epoch": 2, "step": 0, "completed": ["seg_pretrain", "joint"]}, ("joint.epochs", 2, 3),
         ["seg_pretrain"]),
        ({"stage": "seg_pretrain", "epoch": 1, "step": 3, "completed": []}, ("joint.epochs", 2, 5), []),
        ({"stage": "joint", "epoch": 1, "step": 4, "completed": ["seg_pretrain"]}, ("joint.epochs", 3, 2),
         ["seg_pretrain"]),
    ],
    ids=["finished-stage-reopened", "later-stage", "current-stage-lowered-to-begun"],
)
def test_reopen(position: dict, edit: tuple, completed: list[str]) -> None:
    assert reopen(position, [edit])["completed"] == completed


def test_reopen_refuses_fewer_epochs_than_begun() -> None:
    position = {"stage": "joint", "epoch": 1, "step": 4, "completed": []}
    with pytest.raises(ConfigError, match="already begun 2 epoch"):
        reopen(position, [("joint.epochs", 3, 1)])


def test_the_ranks_of_several_cpu_processes_resume_with_the_same_changes(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints/last.safetensors").write_bytes(b"")
    started = []

    class Finished:
        def __init__(self, cmd: list[str], env: dict) -> None:
            started.append(cmd)

        def wait(self) -> int:
            return 0

    monkeypatch.setattr(launch.subprocess, "Popen", Finished)
    launch.launch(tmp_path, 2, ["joint.epochs=2"])
    assert started[0][-4:] == ["train", "--resume", str(tmp_path), "joint.epochs=2"]
