"""The three stages of Sec. 3.4: their networks, their batches, their step and validation.

``seg_pretrain`` (1a) trains G with BCE on X^P; ``grade_pretrain`` (1b) trains the plain grader
with focal loss on X^I; ``joint`` (2) trains G, the lesion-attentive grader and D end to end. A stage whose grader
takes a frozen G's masks or statistics reads them precomputed (``training/mask_inputs.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import repeat
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from drcollab.config import GraderConfig
from drcollab.distributed import barrier
from drcollab.models import (
    LesionDiscriminator,
    LesionGenerator,
    LesionGrader,
    grader_from_ori,
    load_model,
    save_model,
)
from drcollab.models.checkpoint import unwrap
from drcollab.precision import resolve_precision
from drcollab.training.config import STAGES, TrainConfig
from drcollab.training.data import TrainData, cycle, make_loader, stage_batches, train_sampler
from drcollab.training.datasets import FundusDataset, GraderInputLoader
from drcollab.training.loop import Context, run_epochs
from drcollab.training.mask_inputs import stage_mask_inputs
from drcollab.training.schedule import lr_at, set_lr
from drcollab.training.steps import Nets, grade_step, joint_step, seg_step
from drcollab.training.two_size import CropDataset
from drcollab.training.validate import validate_generator, validate_grader

KINDS = ("generator", "grader", "discriminator")


def _prepare(ctx: Context, model: nn.Module, trainable: bool) -> nn.Module:
    """Device, memory format, synchronised BN and DDP for one network."""
    model = model.to(ctx.dist.device)
    if hasattr(model, "checkpointing"):  # G and the grader
        model.checkpointing = trainable and ctx.cfg.runtime.activation_checkpointing
    if ctx.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if not trainable:
        model.eval().requires_grad_(False)
        return model
    model.train()
    if ctx.dist.enabled:
        if ctx.cfg.runtime.sync_bn:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        ids = [ctx.dist.device.index] if ctx.dist.device.type == "cuda" else None
        model = DistributedDataParallel(model, device_ids=ids)
    if ctx.cfg.runtime.compile:
        model = torch.compile(model)
    return model


def _adam(ctx: Context, model: nn.Module, stage: str) -> torch.optim.Optimizer:
    s = ctx.cfg.stage(stage)
    return torch.optim.Adam(model.parameters(), lr=s.lr, betas=s.betas)


def stage_seed(cfg: TrainConfig, stage: str) -> int:
    """The seed of ``stage``'s fresh weights and of its batch order."""
    return cfg.seed * 10 + STAGES.index(stage)


def _saved(ctx: Context, stage: str, kind: str) -> Path | None:
    path = ctx.folder.stage_dir(stage) / kind
    return path if path.with_suffix(".json").is_file() else None


def build_nets(ctx: Context, stage: str) -> Nets:
    """Fresh (seeded) or pre-trained networks for ``stage``, with their optimizers."""
    cfg = ctx.cfg
    torch.manual_seed(stage_seed(cfg, stage))  # fresh weights do not depend on earlier stages
    nets = Nets(scaler=resolve_precision(cfg.runtime.amp, ctx.dist.device).grad_scaler())
    if stage == "seg_pretrain":
        nets.generator = _prepare(ctx, LesionGenerator(cfg.generator), True)
        nets.opt_generator = _adam(ctx, nets.generator, stage)
    elif stage == "grade_pretrain":
        ori = GraderConfig.model_validate({**cfg.grader.model_dump(), "mode": "ori"})
        nets.grader = _prepare(ctx, LesionGrader(ori), True)
        nets.opt_grader = _adam(ctx, nets.grader, stage)
        if cfg.grader.lesion_stats:  # frozen, for its statistics; loaded after the grader's seeded initialisation
            g_path = _saved(ctx, "seg_pretrain", "generator") or cfg.init.generator
            generator = load_model(g_path) if g_path else LesionGenerator(cfg.generator)  # fresh: drcollab plan only
            nets.generator = _prepare(ctx, generator, False)
    else:
        j = cfg.joint
        generator, grader = joint_start(cfg, _saved(ctx, "seg_pretrain", "generator"),
                                        _saved(ctx, "grade_pretrain", "grader"))
        if generator is not None:
            nets.generator = _prepare(ctx, generator, j.train_generator)
            nets.opt_generator = _adam(ctx, nets.generator, stage) if j.train_generator else None
        nets.grader = _prepare(ctx, grader, True)
        nets.opt_grader = _adam(ctx, nets.grader, stage)
        if j.adversarial:
            nets.discriminator = _prepare(ctx, LesionDiscriminator(cfg.discriminator), True)
            nets.opt_discriminator = _adam(ctx, nets.discriminator, stage)
    return nets


def joint_start(cfg: TrainConfig, g_path: Path | None, c_path: Path | None) -> tuple[nn.Module | None, nn.Module]:
    """Stage 2's G (None for an ori grader without lesion statistics) and grader as the stage begins, on the CPU.

    Args:
        cfg: The run's config.
        g_path, c_path: The run's own stage-1 checkpoints, if it trained them; else ``init.*``, else fresh weights.

    Call it right after seeding for stage 2 (as :func:`build_nets` does): the fresh parts (the attention model)
    then get the very weights the run started from, so ``benchmarks/pseudo_mask_stats.py`` can rebuild them.
    """
    generator = None
    if cfg.grader.mode != "ori" or cfg.grader.lesion_stats:
        g_path = g_path or cfg.init.generator
        generator = load_model(g_path) if g_path else LesionGenerator(cfg.generator)
    c_path = c_path or cfg.init.grader
    if c_path is None:
        return generator, LesionGrader(cfg.grader)
    grader = load_model(c_path)
    return generator, grader if cfg.grader.mode == "ori" else grader_from_ori(grader, cfg.grader)


def run_stage(ctx: Context, stage: str, nets: Nets, data: TrainData) -> None:
    """Train ``stage`` from ``ctx.position`` to its last epoch."""
    cfg, dist = ctx.cfg, ctx.dist
    s = cfg.stage(stage)
    seed = stage_seed(cfg, stage)
    load = data.cache.get
    workers = cfg.data.workers
    batch = stage_batches(cfg, stage, data, dist.world_size)  # the config's batches are global
    g_inputs = None
    if stage == "seg_pretrain":
        ds = FundusDataset(data.pixel_train, data.seg_cache.get, s.augment, labels="masks")
        main_sampler = train_sampler(ds, seed, batch.per_rank, dist)
        main_loader = make_loader(ds, main_sampler, batch.per_rank, workers, dist.device)

        def step(batch: dict, epoch: int) -> dict[str, float]:
            return seg_step(nets, batch, cfg, ctx.autocast)

        def validate() -> dict[str, float]:
            return validate_generator(nets.generator, data.pixel_val, data.seg_cache, dist.device, ctx.autocast)
    else:
        G = nets.generator
        two_size = stage == "joint" and cfg.two_size_joint
        # G at its own size: the grader reads the masks of the G the stage started with, also when a resume finds
        # G further on (training/two_size.py).
        g_inputs = stage_mask_inputs(ctx, stage, start_generator(ctx) if two_size else G,
                                     data.image_train + data.image_val)
        ds = FundusDataset(data.image_train, load, s.augment, labels="grade", presence=cfg.data.presence,
                           g_inputs=g_inputs)
        main_sampler = train_sampler(ds, seed, batch.per_rank, dist, balanced=cfg.data.balanced,
                                     shares=data.image_shares)
        val_sources = [part.label for part in data.image_sources for _ in part.val] or None
        main_loader = make_loader(ds, main_sampler, batch.per_rank, workers, dist.device)

        def validate() -> dict[str, float]:
            out = validate_grader(nets.grader, G, data.image_val, data.cache, dist.device, ctx.autocast, g_inputs,
                                  sources=val_sources)
            if G is not None and cfg.joint.train_generator and data.pixel_val:
                out |= validate_generator(G, data.pixel_val, data.seg_cache, dist.device, ctx.autocast)
            return out

        if stage == "grade_pretrain":

            def step(batch: dict, epoch: int) -> dict[str, float]:
                return grade_step(nets, batch, cfg, ctx.autocast)
        else:

            def step(p_batch: dict | None, c_batch: dict | None, i_batch: dict, epoch: int) -> dict[str, float]:
                use_semi = cfg.joint.semi and epoch >= cfg.joint.semi_warmup_epochs
                return joint_step(nets, p_batch, i_batch, cfg, ctx.autocast, use_semi, c_batch)

    steps = min(main_sampler.num_batches(), s.max_steps_per_epoch or 10**12)
    pixel_stream = _pixel_stream(ctx, stage, nets, data, seed, batch.pixel_per_rank)
    crop_stream = _crop_stream(ctx, stage, data, seed, batch.per_rank, g_inputs)
    optimizers = [nets.opt_generator, nets.opt_grader, nets.opt_discriminator]

    def scheduled(*args: object, epoch: int) -> dict[str, float]:
        pos = ctx.position  # the step about to run: position counts the steps done
        set_lr(optimizers, lr_at(s, pos.epoch * steps + pos.step, s.epochs * steps))
        return step(*args, epoch=epoch)

    def batches(epoch: int, start: int) -> Iterator[tuple]:
        main_sampler.set_epoch(epoch, start)
        if stage == "joint":
            pixel, crops = pixel_stream(epoch * steps + start), crop_stream(epoch * steps + start)
            yield from ((p, c, i) for i, p, c in zip(main_loader, pixel, crops, strict=False))
        else:
            yield from ((b,) for b in main_loader)

    run_epochs(ctx, nets, batches, steps, scheduled, validate)


def _pixel_stream(ctx: Context, stage: str, nets: Nets, data: TrainData, seed: int,  # noqa: ANN202
                  bs: int | None):
    """For the joint stage with a trained G: X^P batches of ``bs`` per process, cycled in lock-step with X^I's."""
    cfg = ctx.cfg
    if stage != "joint" or nets.generator is None or not cfg.joint.train_generator:
        return lambda start: repeat(None)
    # G at its own size trains on crops of X^P as in stage 1a; else on X^P as stage 2 augments X^I.
    augment = cfg.seg_pretrain.augment if cfg.two_size_joint else cfg.joint.augment
    ds = FundusDataset(data.pixel_train, data.seg_cache.get, augment, labels="masks")
    sampler = train_sampler(ds, seed + 5, bs, ctx.dist)
    loader = make_loader(ds, sampler, bs, cfg.data.workers, ctx.dist.device)
    return lambda start: cycle(loader, sampler, start)


def _crop_stream(ctx: Context, stage: str, data: TrainData, seed: int, bs: int,  # noqa: ANN202
                 g_inputs: GraderInputLoader | None):
    """For the joint stage with G at its own size: batches of X^I crops at G's size (``training/two_size.py``),
    ``bs`` per process, cycled in lock-step with X^I's; else None at every step."""
    cfg = ctx.cfg
    if stage != "joint" or not cfg.two_size_joint:
        return lambda start: repeat(None)
    ds = CropDataset(data.image_train, data.seg_cache.get, data.cache.get, g_inputs, cfg.seg_pretrain.augment.crop,
                     cfg.data.presence)
    sampler = train_sampler(ds, seed + 7, bs, ctx.dist)
    loader = make_loader(ds, sampler, bs, cfg.data.workers, ctx.dist.device)
    return lambda start: cycle(loader, sampler, start)


def start_generator(ctx: Context) -> nn.Module:
    """The G stage 2 starts from (the run's stage-1a G, else ``init.generator``), freshly loaded, in eval mode."""
    path = _saved(ctx, "seg_pretrain", "generator") or ctx.cfg.init.generator
    if path is None:
        raise ValueError("stage 2 trains G at its own size but has no G to start from: set seg_pretrain.epochs > 0 "
                         "or init.generator")
    return load_model(path).to(ctx.dist.device).eval()


def finish_stage(ctx: Context, stage: str, nets: Nets) -> None:
    """Save the stage's networks under ``RUN/models/<stage>/`` and record the stage as done.

    A network the stage kept frozen (no optimiser: G in stage 1b with lesion statistics, or in stage 2 with
    ``joint.train_generator: false``) keeps the metadata of the checkpoint it was loaded from, with
    ``frozen_in`` naming this stage, so a bundle does not claim that the stage trained it.

    Ends in a barrier: the next stage's networks are read from these files by every rank.
    """
    if ctx.dist.is_main:
        meta = {"stage": stage, "epochs": ctx.cfg.stage(stage).epochs, "run": ctx.cfg.name}
        for kind in KINDS:
            model = getattr(nets, kind)
            if model is None:
                continue
            part_meta = meta
            if getattr(nets, f"opt_{kind}") is None:
                source = getattr(unwrap(model), "checkpoint_metadata", {})
                part_meta = {**source, "frozen_in": {"stage": stage, "run": ctx.cfg.name}}
            save_model(model, ctx.folder.stage_dir(stage) / kind, metadata=part_meta)
    ctx.position.completed.append(stage)
    ctx.checkpoint(nets)
    barrier()
