"""The three stages of Sec. 3.4: their networks, their batches, their step and validation.

``seg_pretrain`` (1a) trains G with BCE on X^P; ``grade_pretrain`` (1b) trains the plain grader
with focal loss on X^I; ``joint`` (2) trains G, the lesion-attentive grader and D end to end. A stage whose grader
takes a frozen G's masks or statistics reads them precomputed (``training/mask_inputs.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import repeat
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset

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
from drcollab.training.data import StageBatches, TrainData, cycle, make_loader, stage_batches, train_sampler
from drcollab.training.datasets import FundusDataset, GraderInputLoader
from drcollab.training.loop import Context, run_epochs
from drcollab.training.mask_inputs import stage_mask_inputs
from drcollab.training.schedule import lr_at, set_lr
from drcollab.training.steps import JointBatch, Nets, grade_step, joint_route, joint_step, seg_step
from drcollab.training.validate import validate_generator, validate_grader
from drcollab.training.views import view_dataset

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
        # G further on (training/views.py).
        g_inputs = stage_mask_inputs(ctx, stage, start_generator(ctx) if two_size else G,
                                     data.image_train + data.image_val)
        if stage == "joint" and not two_size:  # G's X^I inputs are the grader's: one sampler with D's real view
            ds = view_dataset(cfg, data, data.image_train, g_inputs)
        else:
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
            route = joint_route(cfg)  # chosen once: G on the grader's images, or on crops at its own size

            def step(i_batch: dict, p_batch: dict | None, c_batch: dict | None, d_batch: dict | None,
                     epoch: int) -> dict[str, float]:
                return joint_step(nets, JointBatch(i_batch, p_batch, c_batch, d_batch), cfg, ctx.autocast, route)

    steps = min(main_sampler.num_batches(), s.max_steps_per_epoch or 10**12)
    streams = _joint_streams(ctx, stage, nets, data, seed, batch, g_inputs)
    optimizers = [nets.opt_generator, nets.opt_grader, nets.opt_discriminator]

    def scheduled(*args: object, epoch: int) -> dict[str, float]:
        pos = ctx.position  # the step about to run: position counts the steps done
        set_lr(optimizers, lr_at(s, pos.epoch * steps + pos.step, s.epochs * steps))
        return step(*args, epoch=epoch)

    def batches(epoch: int, start: int) -> Iterator[tuple]:
        main_sampler.set_epoch(epoch, start)
        if stage == "joint":
            pixel, crops, real = (stream(epoch * steps + start) for stream in streams)
            yield from zip(main_loader, pixel, crops, real, strict=False)
        else:
            yield from ((b,) for b in main_loader)

    run_epochs(ctx, nets, batches, steps, scheduled, validate)


def _joint_streams(ctx: Context, stage: str, nets: Nets, data: TrainData, seed: int, batch: StageBatches,
                   g_inputs: GraderInputLoader | None) -> list[Callable[[int], Iterator[dict | None]]]:
    """Stage 2's batches beside X^I's, each cycled in lock-step with it (``start -> iterator``; None at every
    step where the stage has no such batch):

    - X^P for G's BCE (G trains), ``pixel_per_rank`` per process: at one size augmented as X^I (``joint.augment``),
      at two sizes cut as in stage 1a (``seg_pretrain.augment``: lesion-centred crops at G's size);
    - X^I crops at G's size (two sizes), G's X^I inputs, ``per_rank`` per process;
    - D's real view of X^P (``joint.adversarial``), ``pixel_per_rank`` per process, drawn by the sampler of G's
      X^I inputs (``training/views.py`` ``view_dataset``), so D's real and fake images are cut alike.
    """
    cfg = ctx.cfg
    none = [lambda start: repeat(None)] * 3
    if stage != "joint" or nets.generator is None or not cfg.joint.train_generator:
        return none

    def stream(ds: Dataset, offset: int, bs: int) -> Callable[[int], Iterator[dict]]:
        sampler = train_sampler(ds, seed + offset, bs, ctx.dist)
        loader = make_loader(ds, sampler, bs, cfg.data.workers, ctx.dist.device)
        return lambda start: cycle(loader, sampler, start)

    augment = cfg.seg_pretrain.augment if cfg.two_size_joint else cfg.joint.augment
    out = [stream(FundusDataset(data.pixel_train, data.seg_cache.get, augment, labels="masks"), 5,
                  batch.pixel_per_rank), *none[1:]]
    if cfg.two_size_joint:
        out[1] = stream(view_dataset(cfg, data, data.image_train, g_inputs), 7, batch.per_rank)
    if nets.discriminator is not None:
        out[2] = stream(view_dataset(cfg, data, data.pixel_train, grades=False), 11, batch.pixel_per_rank)
    return out


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
