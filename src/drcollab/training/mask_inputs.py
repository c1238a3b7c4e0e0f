"""The grader's inputs from a frozen G, through the one mask path (``models/mask_path.py``), computed once.

While G is frozen and the grader trains (stage 1b with ``grader.lesion_stats``; stage 2 with
``joint.train_generator: false``, i.e. Lesion (Pretrained)), what G gives each grading image never changes. So
before the stage, every X^I image (training and validation) is decoded and preprocessed at G's size
(``data.seg_size``, on the fly: no G-size copy is cached), G runs on it exactly as ``Predictor.forward`` runs it
(eval mode, fp32, the tiles the bundle will record) and the pooled masks (uint8) and statistics (float32) are
stored in the data cache (``data/cache.py`` ``GraderInputCache``), keyed by G's weights, its preprocessing and
its tiling: a second run with the same G reuses them, a changed G misses. The datasets then serve them with each
image, moved by the same augmentation (``training/datasets.py``).
"""

from __future__ import annotations

import time
from functools import partial

import torch
from torch import nn
from tqdm import tqdm

from drcollab.data.cache import CACHE_VERSION, GraderInputCache, preprocess_record
from drcollab.data.records import Record
from drcollab.data.transforms import image_to_tensor
from drcollab.distributed import DistInfo, barrier
from drcollab.models.checkpoint import unwrap
from drcollab.models.lesion_stats import STATS_PER_LESION
from drcollab.models.mask_path import generator_digest, grader_inputs, quantise
from drcollab.training.config import TrainConfig
from drcollab.training.datasets import GraderInputLoader
from drcollab.training.loop import Context

VERSION = 1  # bump when grader_inputs or lesion_statistics change what they compute


def uses_mask_path(cfg: TrainConfig, stage: str) -> bool:
    """Whether ``stage``'s grader takes G's inputs from the precomputed mask path: G frozen while it trains, or
    stage 2 training G at its own size (``training/views.py``: the grader reads the start G's masks)."""
    g = cfg.grader
    if stage == "grade_pretrain":
        return g.lesion_stats
    frozen = not cfg.joint.train_generator and (g.mode != "ori" or g.lesion_stats)
    return stage == "joint" and (frozen or cfg.two_size_joint)


def generator_tiles(cfg: TrainConfig) -> tuple[int, int]:
    """G's tile side (0: whole image) and overlap: the crop stage 1a trained it on, overlapping by a quarter.

    The bundle records the same values (``trainer.export_final``); a G given by ``init.generator`` is taken to
    have been trained on this config's ``seg_pretrain.augment.crop``.
    """
    tile = cfg.seg_pretrain.augment.crop or 0
    return tile, tile // 4


def grader_factor(cfg: TrainConfig) -> int:
    """G's size over the grader's (``data.seg_size / data.preprocess.size``)."""
    return cfg.data.seg_preprocess.size // cfg.data.preprocess.size


def mask_cache(cfg: TrainConfig, generator: nn.Module) -> GraderInputCache:
    """The cache of ``generator``'s grader inputs for this config's preprocessing and tiling."""
    tile, overlap = generator_tiles(cfg)
    identity = {"version": VERSION, "cache_version": CACHE_VERSION, "generator": generator_digest(unwrap(generator)),
                "preprocess": cfg.data.seg_preprocess.model_dump(mode="json"), "tile": tile, "overlap": overlap,
                "grader_factor": grader_factor(cfg), "stats_per_lesion": STATS_PER_LESION}
    return GraderInputCache(cfg.data.cache_dir, identity)


def fill_mask_cache(
    generator: nn.Module, missing: list[Record], cache: GraderInputCache, cfg: TrainConfig, dist: DistInfo,
    progress: bool = False,
) -> int:
    """Compute this rank's share of ``missing`` (every ``world_size``-th record); returns how many it computed."""
    g = unwrap(generator)
    was_training = g.training
    g.eval()
    tile, overlap = generator_tiles(cfg)
    share = missing[dist.rank :: dist.world_size]
    for record in tqdm(share, desc="G's masks for the grader", unit="img", disable=not (progress and share)):
        pre = preprocess_record(record, cfg.data.seg_preprocess, with_masks=False)
        image = image_to_tensor(pre.image)[None].to(dist.device)  # (1, 3, S, S)
        with torch.inference_mode():
            out = grader_inputs(g, image, grader_factor(cfg), tile, overlap, stats=True)
        cache.put(record, quantise(out.masks[0]).cpu().numpy(), out.stats[0].cpu().numpy())  # (L, s, s), (S,)
    g.train(was_training)
    return len(share)


def stage_mask_inputs(ctx: Context, stage: str, generator: nn.Module | None,
                      records: list[Record]) -> GraderInputLoader | None:
    """For a stage on the mask path: fill the cache for ``records`` (ranks share the work, rank 0 shows a progress
    bar and logs ``precompute/images`` before and ``precompute/seconds`` after, so the stage's logged time includes
    it), and return the loader the datasets and the validation read; else None."""
    if not uses_mask_path(ctx.cfg, stage):
        return None
    if generator is None:
        raise ValueError(f"stage {stage} takes G's masks through the mask path but has no G")
    cache = mask_cache(ctx.cfg, generator)
    missing = [r for r in records if not cache.path(r).is_file()]
    pos = ctx.position
    ctx.folder.log(stage, pos.epoch, pos.step, pos.global_step, {"precompute/images": float(len(missing))})
    start = time.time()
    barrier()  # every rank has listed the same missing entries before any writes one: the shares are disjoint
    fill_mask_cache(generator, missing, cache, ctx.cfg, ctx.dist, ctx.dist.is_main and ctx.cfg.runtime.progress)
    barrier()
    ctx.folder.log(stage, pos.epoch, pos.step, pos.global_step, {"precompute/seconds": time.time() - start})
    return partial(cache.get, stats=ctx.cfg.grader.lesion_stats)
