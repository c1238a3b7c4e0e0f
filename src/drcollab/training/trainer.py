"""``drcollab train``: the paper's schedule end to end, resumable and distributed.

``run_training`` is the whole pipeline in named steps; each stage lives in ``stages.py``, one
optimisation step of each in ``steps.py``, and the epoch loop in ``loop.py``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import torch
from tqdm import tqdm

from drcollab.config import dump_config
from drcollab.distributed import DistInfo, barrier, setup, teardown
from drcollab.errors import ConfigError
from drcollab.models.checkpoint import file_sha256
from drcollab.precision import resolve_precision, use_channels_last
from drcollab.training.checks import check_config, check_data
from drcollab.training.config import STAGES, TrainConfig
from drcollab.training.data import build_data, check_batches, sets_used
from drcollab.training.launch import launch, should_launch
from drcollab.training.loop import Context, Position, StopOnSignal
from drcollab.training.mask_inputs import generator_tiles
from drcollab.training.resume import resume_config
from drcollab.training.run_folder import RunFolder
from drcollab.training.stages import KINDS, build_nets, finish_stage, run_stage
from drcollab.training.state import load_into, read_state

log = logging.getLogger(__name__)
FINAL_DIR = "model"


def run_training(cfg: TrainConfig | None, out: str | Path, resume: bool = False, changes: list[str] | None = None
                 ) -> Path:
    """Train every stage whose ``epochs`` > 0, then write the final model bundle to ``RUN/model/``.

    Args:
        cfg: The resolved config (ignored with ``resume``: the config of the run's checkpoint is used).
        out: The run folder.
        resume: Continue the run in ``out`` from its last checkpoint.
        changes: With ``resume``, ``key=value`` changes to the run's config, e.g. ``joint.epochs=80``
            (only those ``training/resume.py`` allows).

    Returns:
        The folder of the final model bundle.
    """
    cfg, state = _load_or_claim(Path(out), cfg, resume, changes or [])
    if should_launch(cfg):
        return launch(Path(out), cfg.runtime.cpu_processes, changes or [])
    dist = setup(cfg.runtime.device, cfg.runtime.dist_timeout_s)
    if cfg.runtime.sync_bn and dist.device.type != "cuda":
        raise ConfigError("runtime.sync_bn: synchronised batch norm needs CUDA devices (PyTorch has none for the CPU)")
    folder = RunFolder(Path(out), writer=dist.is_main)
    ctx = Context(cfg, dist, folder, _autocast(cfg, dist), _channels_last(cfg, dist), _position(state))
    _configure_torch(cfg)
    try:
        if resume:
            folder.truncate_metrics(ctx.position.global_step)
        data = build_data(cfg.data, dist, *sets_used(cfg))
        log.info("data: %s", data.summary())
        check_batches(cfg, data, dist.world_size)  # before any stage trains: the batch sizes are global
        with StopOnSignal(ctx):
            for stage in STAGES:
                if stage in ctx.position.completed or cfg.stage(stage).epochs == 0:
                    continue
                if ctx.position.stage != stage:
                    ctx.position = Position(stage, global_step=ctx.position.global_step,
                                            completed=ctx.position.completed)
                nets = build_nets(ctx, stage)
                if state is not None and state[1]["position"]["stage"] == stage:
                    load_into(*state, _models(nets), _optimizers(nets))
                run_stage(ctx, stage, nets, data)
                finish_stage(ctx, stage, nets)
        return export_final(ctx)
    finally:
        folder.close()
        teardown()


def _load_or_claim(out: Path, cfg: TrainConfig | None, resume: bool, changes: list[str]
                   ) -> tuple[TrainConfig, tuple | None]:
    """The config (and, resuming, the state); a new run is checked against its data before its folder is claimed."""
    folder = RunFolder(out, writer=int(os.environ.get("RANK", "0")) == 0)
    folder.remove_stale_temps()  # left by a writer killed mid-write
    if resume:
        if not folder.state_path.is_file():
            raise ConfigError(f"{out}: nothing to resume (no {folder.state_path.relative_to(out)})")
        tensors, meta = read_state(folder.state_path)
        cfg, position = resume_config(folder, meta, changes)
        return cfg, (tensors, {**meta, "position": position})
    if cfg is None:
        raise ConfigError("run_training needs a config unless resuming")
    check_config(cfg)
    check_data(cfg)
    folder.claim(dump_config(cfg))
    return cfg, None


def _position(state: tuple | None) -> Position:
    if state is None:
        return Position(STAGES[0])
    return Position(**state[1]["position"])


def _models(nets: object) -> dict:
    return {k: getattr(nets, k) for k in KINDS if getattr(nets, k) is not None}


def _optimizers(nets: object) -> dict:
    return {k: getattr(nets, f"opt_{k}") for k in KINDS if getattr(nets, f"opt_{k}") is not None}


def _autocast(cfg: TrainConfig, dist: DistInfo):  # noqa: ANN202
    precision = resolve_precision(cfg.runtime.amp, dist.device)
    if dist.is_main:
        tqdm.write(f"precision: {precision}")
    return precision.autocast()


def _channels_last(cfg: TrainConfig, dist: DistInfo) -> bool:
    return use_channels_last(cfg.runtime.channels_last, dist.device)


def _configure_torch(cfg: TrainConfig) -> None:
    if cfg.runtime.threads:
        torch.set_num_threads(cfg.runtime.threads)
    elif cfg.runtime.cpu_processes > 1 and os.environ.get("WORLD_SIZE"):
        torch.set_num_threads(1)
    if cfg.runtime.deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    elif torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True


def export_final(ctx: Context) -> Path:
    """Copy the last-trained G and grader to ``RUN/model/`` with a ``bundle.json`` for prediction."""
    root = ctx.folder.root
    final = root / FINAL_DIR
    if ctx.dist.is_main:
        final.mkdir(parents=True, exist_ok=True)
        parts = {}
        g_stages = ("joint", "seg_pretrain", "grade_pretrain")  # stage 1b keeps a copy of the frozen G it used
        for kind, stages in (("generator", g_stages), ("grader", ("joint", "grade_pretrain"))):
            source = next((ctx.folder.stage_dir(s) / kind for s in stages
                           if (ctx.folder.stage_dir(s) / f"{kind}.json").is_file()), None)
            if source is None:
                continue
            for suffix in (".safetensors", ".json"):
                tmp = final / f".{kind}{suffix}.tmp"
                shutil.copyfile(source.with_name(source.name + suffix), tmp)
                os.replace(tmp, final / f"{kind}{suffix}")
            parts[kind] = {"file": kind, "stage": source.parent.name,
                           "sha256": file_sha256(final / f"{kind}.safetensors")}  # checked at every load
        # A G whose last training saw random crops (stage 1a; a frozen G in stage 1b or 2 kept those weights)
        # is run in overlapping tiles of that size, as the mask path ran it in training (training/mask_inputs.py).
        g_stage = parts.get("generator", {}).get("stage")
        trained_on_crops = g_stage in ("seg_pretrain", "grade_pretrain") or (
            g_stage == "joint" and (not ctx.cfg.joint.train_generator or ctx.cfg.two_size_joint))
        tile, overlap = generator_tiles(ctx.cfg)
        bundle = {
            "name": ctx.cfg.name,
            "parts": parts,
            "tile": (tile or None) if trained_on_crops else None,
            **({"tile_overlap": overlap} if trained_on_crops and tile else {}),
            "preprocess": ctx.cfg.data.preprocess.model_dump(mode="json"),
            # G's own resolution, when it differs from the grader's (data.seg_size): predict preprocesses at it.
            **({"generator_preprocess": ctx.cfg.data.seg_preprocess.model_dump(mode="json")}
               if "generator" in parts and ctx.cfg.data.seg_preprocess != ctx.cfg.data.preprocess else {}),
            "referable": ctx.cfg.referable.model_dump(mode="json"),
            "trained_stages": ctx.position.completed,
        }
        tmp = final / ".bundle.json.tmp"
        tmp.write_text(json.dumps(bundle, indent=2))
        os.replace(tmp, final / "bundle.json")
    barrier()
    return final
