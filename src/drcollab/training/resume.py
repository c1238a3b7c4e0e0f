"""What a resumed run may change: ``drcollab train --resume RUN [key=value ...]``.

A resumed run continues with the config its checkpoint holds. ``key=value`` arguments after ``--resume`` change it,
but only where the stored weights and position stay valid:

- A stage's ``epochs``, for the stage the run is in or a later one. Raised for the last stage a finished run trained,
  that stage trains the extra epochs from where it ended (its learning-rate schedule spans the new total). A stage
  the run is past cannot change (the later stages started from its weights), nor can the current stage's epochs
  fall below those it has begun.
- :data:`RESUMABLE`'s runtime settings, which change neither the weights nor the batches.

Everything else is refused: the networks' fields (widths, backbone, ...) because the stored weights cannot take
another value, and the data, loss and optimiser fields because the stored state was trained with theirs; both need a
new run. The run folder's ``config.yaml`` must say the same as the config the run continues with: an edit there is
refused naming each changed field, so the folder never contradicts the model it holds. The accepted config is written
back to ``config.yaml``, and every checkpoint from then on stores it.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from drcollab.config import changed_fields, deep_merge, dump_config, format_validation_error, parse_overrides, read_yaml
from drcollab.errors import ConfigError, DataError
from drcollab.files import atomic_write_text
from drcollab.training.config import STAGES, TrainConfig
from drcollab.training.run_folder import RunFolder

EPOCHS = tuple(f"{stage}.epochs" for stage in STAGES)
RESUMABLE = frozenset({*EPOCHS, "data.workers", "runtime.progress", "runtime.log_every", "runtime.checkpoint_every",
                       "runtime.validate_every", "runtime.threads", "runtime.dist_timeout_s"})
NETWORKS = ("generator.", "discriminator.", "grader.")  # fields that set the stored weights' shapes
ALLOWED = ("a resume may change only the stages' epochs, data.workers and runtime progress, log_every, "
           "checkpoint_every, validate_every, threads and dist_timeout_s")


def resume_config(folder: RunFolder, meta: dict[str, Any], changes: list[str]) -> tuple[TrainConfig, dict[str, Any]]:
    """The config a resumed run continues with, and its position (a finished stage whose epochs rose is reopened).

    Args:
        folder: The run folder.
        meta: The metadata of the run's training state (``config``, ``position``).
        changes: ``key=value`` changes from the command line.

    Raises:
        ConfigError: a change a resume cannot make, or a ``config.yaml`` edited away from the run's config.
        DataError: the state holds no valid config.
    """
    try:
        stored = TrainConfig.model_validate(meta["config"])
    except (KeyError, TypeError, ValidationError) as err:
        raise DataError(folder.state_path, "holds no valid training config: not a drcollab training state; delete it "
                        "and train again with --config and --out") from err
    old = stored.model_dump(mode="json")
    try:
        cfg = TrainConfig.model_validate(deep_merge(old, parse_overrides(changes)))
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, "the key=value changes after --resume", TrainConfig)) from err
    new = cfg.model_dump(mode="json")
    edits = changed_fields(old, new)
    refused = [f"{key} {_show(a)} -> {_show(b)} ({_why(key)})" for key, a, b in edits if key not in RESUMABLE]
    if refused:
        raise ConfigError(f"cannot change when resuming: {'; '.join(refused)}; start a new run with --config and "
                          f"another --out ({ALLOWED})")
    position = reopen(meta["position"], edits)
    on_disk = _folder_config(folder, old, new)
    if folder.writer and on_disk != new:
        atomic_write_text(folder.config_path, dump_config(cfg))
    return cfg, position


def reopen(position: dict[str, Any], edits: list[tuple[str, Any, Any]]) -> dict[str, Any]:
    """``position`` after the ``epochs`` edits: the current stage reopened when it finished and its epochs rose.

    Raises:
        ConfigError: the epochs of a stage the run is past, or current epochs below those the stage has begun.
    """
    pos = {**position, "completed": list(position["completed"])}
    current = STAGES.index(pos["stage"])
    begun = pos["epoch"] + (pos["step"] > 0)  # epochs of the current stage that have taken a step
    for key, before, after in edits:
        if key not in EPOCHS:
            continue
        stage = key.split(".")[0]
        index = STAGES.index(stage)
        if index < current:
            raise ConfigError(f"{key} {before} -> {after}: the run has moved on from {stage} to {pos['stage']}, which "
                              "builds on it; start a new run to change it")
        if index == current and after < max(begun, 1):
            raise ConfigError(f"{key} {before} -> {after}: the run has already begun {begun} epoch(s) of {stage}; "
                              f"keep {stage}.epochs at {max(begun, 1)} or more")
        if index == current and stage in pos["completed"] and after > pos["epoch"]:
            pos["completed"].remove(stage)
    return pos


def _folder_config(folder: RunFolder, old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any] | None:
    """The run folder's config.yaml as a config tree (None when missing); refused when edited away from ``old``
    into anything but ``new``."""
    path = folder.config_path
    if not path.is_file():
        return None
    try:
        on_disk = TrainConfig.model_validate(read_yaml(path)).model_dump(mode="json")
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, str(path), TrainConfig)) from err
    edits = changed_fields(old, on_disk)
    if on_disk == new or not edits:
        return on_disk
    shown = ", ".join(f"{key} {_show(a)} -> {_show(b)}" for key, a, b in edits)
    unsafe = [f"{key} ({_why(key)})" for key, _, _ in edits if key not in RESUMABLE]
    if unsafe:
        advice = (f"cannot change in a run: {', '.join(unsafe)}; undo the edit, or start a new run with --config "
                  f"{path} and another --out")
    else:
        args = " ".join(f"{key}={_show(b)}" for key, _, b in edits)
        advice = f"undo the edit, or pass the change: drcollab train --resume {folder.root} {args}"
    verb = "differs" if len(edits) == 1 else "differ"
    raise ConfigError(f"{path}: {shown} {verb} from the config this run's checkpoint holds; {advice}")


def _why(key: str) -> str:
    """Why ``key`` cannot change in a run."""
    if key.startswith(NETWORKS):
        return "the stored weights were built for the old value"
    return "the stored state was trained with the old value"


def _show(value: Any) -> str:
    return json.dumps(value)
