"""Checks of a training config against itself and against its data, run before the run folder is claimed.

Each would otherwise surface minutes into a run, as a traceback from deep inside it (a fold split, a random
crop, G's poolings), after ``config.yaml`` was written into a run folder that then holds nothing else. Every
error names the config field and says what to change.
"""

from __future__ import annotations

from drcollab.data.sources import DatasetSpec, read_records
from drcollab.errors import ConfigError, DataError
from drcollab.models.generator import SIZE_MULTIPLE
from drcollab.training.config import STAGES, TrainConfig
from drcollab.training.mask_inputs import generator_tiles, uses_mask_path


def _runs_generator(cfg: TrainConfig, stage: str) -> bool:
    """Whether G runs on the stage's (cropped) training batches; a frozen G runs once, at its own size."""
    return stage == "seg_pretrain" or (stage == "joint" and cfg.grader.mode != "ori" and cfg.joint.train_generator)


def _input_sides(cfg: TrainConfig, stage: str) -> list[tuple[str, int]]:
    """``(field, side)`` of the images each network of ``stage`` is fed (before its crop)."""
    seg = ("data.seg_size", cfg.data.seg_preprocess.size) if cfg.data.seg_size else None
    grade = ("data.preprocess.size", cfg.data.preprocess.size)
    if stage == "seg_pretrain":
        return [seg or grade]
    return [grade] + ([seg] if seg and stage == "joint" and cfg.joint.train_generator else [])


def check_config(cfg: TrainConfig) -> None:
    """Refuse values that are valid one by one but cannot run together.

    Raises:
        ConfigError: naming the field, the value and what would work.
    """
    stages = [s for s in STAGES if cfg.stage(s).epochs > 0]
    if not stages:
        raise ConfigError(", ".join(f"{s}.epochs" for s in STAGES) + " are all 0: nothing would be trained "
                          "(and the model bundle would be empty); set at least one to 1 or more")
    d = cfg.data
    if d.val_fold is not None and d.val_fold >= d.n_folds:
        raise ConfigError(f"data.val_fold {d.val_fold} must be below data.n_folds {d.n_folds} "
                          f"(folds are 0 to {d.n_folds - 1}), or null to train on every image")
    for stage in stages:
        crop = cfg.stage(stage).augment.crop
        for field, side in _input_sides(cfg, stage):
            if crop is not None and crop > side:
                raise ConfigError(f"{stage}.augment.crop {crop} is larger than the {side} px images it crops "
                                  f"({field}): use at most {side}, or null for no crop")
        fed = crop or _input_sides(cfg, stage)[0][1]
        if _runs_generator(cfg, stage) and fed % SIZE_MULTIPLE:
            field = f"{stage}.augment.crop" if crop else _input_sides(cfg, stage)[0][0]
            near = max(SIZE_MULTIPLE, fed // SIZE_MULTIPLE * SIZE_MULTIPLE)
            raise ConfigError(f"{field} {fed} must be a multiple of {SIZE_MULTIPLE} (G halves the image 4 times); "
                              f"e.g. {near}")
    _check_mask_path(cfg, stages)


def _check_mask_path(cfg: TrainConfig, stages: list[str]) -> None:
    """G's windows on the mask path (its whole image, or its tiles) must suit its four 2x2 poolings."""
    if not any(uses_mask_path(cfg, s) for s in stages):
        return
    side, (tile, _) = cfg.data.seg_preprocess.size, generator_tiles(cfg)
    fed, field = (tile, "seg_pretrain.augment.crop") if 0 < tile < side else (side, "data.seg_size")
    if fed % SIZE_MULTIPLE:
        near = max(SIZE_MULTIPLE, fed // SIZE_MULTIPLE * SIZE_MULTIPLE)
        raise ConfigError(f"{field} {fed}: the frozen G runs on {fed}-px windows of the grading images, which must "
                          f"be a multiple of {SIZE_MULTIPLE} (G halves the image 4 times); e.g. {near}")


def _count(specs: list[DatasetSpec], masks: bool) -> int:
    records = [r for spec in specs for r in read_records(spec)]
    return sum(r.has_masks if masks else r.grade is not None for r in records)


def check_data(cfg: TrainConfig) -> None:
    """Refuse data that cannot be split into the configured folds (reads the label tables, decodes no image).

    Raises:
        DataError: naming the first source, how many usable images it holds and what to change.
    """
    d = cfg.data
    if d.val_fold is None:
        return
    for specs, masks, what in ((d.pixel, True, "images with lesion masks"), (d.image, False, "graded images")):
        if not specs:
            continue
        n = _count(specs, masks)
        if n < d.n_folds:
            field = "data.pixel" if masks else "data.image"
            raise DataError(specs[0].root, f"{field} holds {n} {what}, too few for data.n_folds {d.n_folds}: "
                            "add images, lower data.n_folds (at least 2), or set data.val_fold null")
