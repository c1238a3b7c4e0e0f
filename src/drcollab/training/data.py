"""Training data: records from the configured sources, validation folds, cache and loaders."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from drcollab.constants import NUM_GRADES
from drcollab.data.cache import PreprocessCache
from drcollab.data.folds import split_records
from drcollab.data.records import Record, ScanReport
from drcollab.data.sources import DatasetSpec, read_records
from drcollab.distributed import DistInfo, barrier
from drcollab.errors import ConfigError, DataError
from drcollab.training.config import STAGES, DataConfig, TrainConfig
from drcollab.training.datasets import FundusDataset
from drcollab.training.sampling import EpochSampler, balanced_weights, share_weights

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceSplit:
    """One source's training and validation records.

    Attributes:
        label: The source in logs and metrics: its format, numbered (``eyepacs-2``) when the format repeats.
        train, val: Its records, split by its own folds.
        share: Its ``share`` of each epoch's samples (``data.image``), or None.
    """

    label: str
    train: list[Record]
    val: list[Record]
    share: float | None = None


@dataclass
class TrainData:
    """Training and validation records of X^P and X^I, and the caches that serve their pixels.

    ``cache`` holds the grader's size (``data.preprocess``), ``seg_cache`` G's (``data.seg_size``; the same
    object when the sizes agree). ``image_sources`` holds X^I per source, in the order of ``image_train`` and
    ``image_val``; ``left_out`` the images the readers left out (Messidor-2's ungradable photos).
    """

    pixel_train: list[Record]
    pixel_val: list[Record]
    image_train: list[Record]
    image_val: list[Record]
    cache: PreprocessCache
    seg_cache: PreprocessCache
    image_sources: list[SourceSplit] = field(default_factory=list)
    left_out: ScanReport = field(default_factory=ScanReport)

    @property
    def image_shares(self) -> tuple[list[int], list[float]] | None:
        """``(source index of each image_train record, share of each source)`` when the sources have shares."""
        if not self.image_sources or self.image_sources[0].share is None:
            return None
        index = [k for k, part in enumerate(self.image_sources) for _ in part.train]
        return index, [part.share for part in self.image_sources]

    def summary(self) -> str:
        text = (
            f"X^P {len(self.pixel_train)} train / {len(self.pixel_val)} val, "
            f"X^I {len(self.image_train)} train / {len(self.image_val)} val"
        )
        if len(self.image_sources) > 1:
            text += " (" + ", ".join(f"{p.label} {len(p.train)} / {len(p.val)}" for p in self.image_sources) + ")"
        if self.left_out.skipped:
            text += f"; sources read: {self.left_out.summary()}"
        return text


def source_labels(specs: list[DatasetSpec]) -> list[str]:
    """Each source's name in logs and metrics: its format, numbered (``eyepacs-2``) when a format repeats."""
    counts, seen = Counter(s.format for s in specs), Counter()
    labels = []
    for spec in specs:
        seen[spec.format] += 1
        labels.append(spec.format if counts[spec.format] == 1 else f"{spec.format}-{seen[spec.format]}")
    return labels


def split_sources(specs: list[DatasetSpec], keep: Callable[[Record], bool], what: str, cfg: DataConfig,
                  limit: int | None, report: ScanReport) -> list[SourceSplit]:
    """Read each source, keep its records that ``keep`` accepts, and split it by its own folds (patients in one
    fold, :mod:`drcollab.data.folds`), so one source's validation fold does not depend on the others.
    ``limit`` cuts each source's training part to its first N images and its validation part to N // 2.

    Raises:
        DataError: a source without a single kept image (``what`` says which kind), an image name used twice,
            or a source too small for ``data.n_folds``.
    """
    parts: list[SourceSplit] = []
    seen: dict[str, Record] = {}
    for spec, label in zip(specs, source_labels(specs), strict=True):
        records = [r for r in read_records(spec, report) if keep(r)]
        if not records:
            raise DataError(spec.root, f"this {spec.format} source holds no image with {what}")
        for r in records:
            if r.name in seen:
                raise DataError(r.image_path, f"image name {r.name!r} also used by {seen[r.name].image_path}")
            seen[r.name] = r
        try:
            train, val = split_records(records, cfg.n_folds, cfg.val_fold, cfg.fold_seed)
        except ValueError as err:
            raise DataError(spec.root, f"{err}: lower data.n_folds") from err
        if limit is not None:
            train, val = train[:limit], val[: max(1, limit // 2)]
        parts.append(SourceSplit(label, train, val, spec.share))
    return parts


def build_data(cfg: DataConfig, dist: DistInfo | None = None, pixel_used: bool = True,
               image_used: bool = True, image_seg_used: bool = False) -> TrainData:
    """Read the sources, split off the validation fold, and fill the preprocessing caches.

    Only the sets a run's stages use are preprocessed (``pixel_used``: X^P at G's size; ``image_used``: X^I at
    the grader's; ``image_seg_used``: X^I's training images at G's size too, for stage 2's crops when G trains at
    its own size, ``training/views.py``), so a segmentation-only run never decodes the grading images. Every
    rank fills its own share of the missing entries (rank 0 with a progress bar), then all wait for each other: no
    full-size image is decoded twice, and N ranks fill the cache N times as fast.
    """
    dist = dist or DistInfo()
    # A source may mix labelled and unlabelled images (e.g. a synthetic set with --pixel-fraction):
    # X^P takes the images that have masks, X^I the ones that have a grade.
    report = ScanReport()
    pixel = split_sources(cfg.pixel, lambda r: r.has_masks, "lesion masks (data.pixel)", cfg, cfg.limit_pixel,
                          report)
    image = split_sources(cfg.image, lambda r: r.grade is not None, "a grade (data.image)", cfg, cfg.limit_image,
                          report)
    for r in (r for part in image for r in part.train + part.val):
        if r.grade_scale != "icdr":
            raise DataError(r.image_path, f"X^I grades must be on the 0-4 scale, got scale {r.grade_scale!r}")
    cache = PreprocessCache(cfg.cache_dir, cfg.preprocess)
    seg_preprocess = cfg.seg_preprocess
    seg_cache = cache if seg_preprocess == cfg.preprocess else PreprocessCache(cfg.cache_dir, seg_preprocess)
    data = TrainData([r for p in pixel for r in p.train], [r for p in pixel for r in p.val],
                     [r for p in image for r in p.train], [r for p in image for r in p.val], cache, seg_cache,
                     image, report)
    todo = [(seg_cache, r) for r in data.pixel_train + data.pixel_val if pixel_used]
    todo += [(cache, r) for r in data.image_train + data.image_val if image_used]
    todo += [(seg_cache, r) for r in data.image_train if image_seg_used and seg_cache is not cache]
    missing = [(c, r) for c, r in todo if not c.path(r).is_file() and c.unusable(r) is None]
    barrier()  # every rank has listed the same missing entries before any writes one: the shares are disjoint
    fill_share(missing, dist.rank, dist.world_size, progress=dist.is_main)
    barrier()
    leave_out_unusable(data, todo, cfg.max_unusable, warn=dist.is_main)
    return data


def leave_out_unusable(data: TrainData, built: list[tuple[PreprocessCache, Record]], max_share: float,
                       warn: bool = True) -> None:
    """Drop the records whose photo the preprocessing could not use (no field of view, undecodable; marked by
    :meth:`PreprocessCache.build`) from every set of ``data``, naming each in ``data.left_out`` (and in the log when
    ``warn``: one DDP rank says it).

    Raises:
        DataError: more than ``max_share`` of a source's images are unusable (naming the first), which says more
            about the folder or the preprocessing settings than about a few bad photos.
    """
    reasons = {r.name: (r, why) for c, r in built if (why := c.unusable(r)) is not None}
    if not reasons:
        return
    sets = [(p.label, p.train + p.val) for p in data.image_sources] + [("data.pixel", data.pixel_train +
                                                                         data.pixel_val)]
    for label, records in sets:
        bad = [reasons[r.name] for r in records if r.name in reasons]
        if len(bad) > max_share * len(records):
            record, why = bad[0]
            raise DataError(record.image_path, f"{why}; {len(bad)} of the {len(records)} photos of {label} cannot "
                            f"be used (more than data.max_unusable = {max_share}): check the folder and "
                            "data.preprocess")
    for record, why in reasons.values():
        if warn:
            log.warning("%s: left out of training: %s", record.image_path, why)
        data.left_out.skip(record.image_path, "unusable photo (no field of view or undecodable)")

    def usable(records: list[Record]) -> list[Record]:
        return [r for r in records if r.name not in reasons]

    data.pixel_train, data.pixel_val = usable(data.pixel_train), usable(data.pixel_val)
    data.image_train, data.image_val = usable(data.image_train), usable(data.image_val)
    data.image_sources = [replace(p, train=usable(p.train), val=usable(p.val)) for p in data.image_sources]


def fill_share(missing: list[tuple[PreprocessCache, Record]], rank: int, world_size: int,
               progress: bool = False) -> int:
    """Build this rank's share of ``missing`` (every ``world_size``-th entry, from ``rank``); returns how many."""
    share = missing[rank::world_size]
    for c, r in tqdm(share, desc="preprocessing", unit="img", disable=not (progress and share)):
        c.build(r)
    return len(share)


def sets_used(cfg: TrainConfig) -> tuple[bool, bool, bool]:
    """Whether the run's stages use X^P (G trains or is validated), X^I (a grader trains) and X^I at G's size
    (stage 2 trains G at its own size, on crops of X^I)."""
    j = cfg.joint
    pixel = bool(cfg.seg_pretrain.epochs) or bool(j.epochs and j.train_generator)
    image = bool(cfg.grade_pretrain.epochs) or bool(j.epochs)
    return pixel, image, cfg.two_size_joint


@dataclass(frozen=True)
class StageBatches:
    """How one stage's global batches split: ``per_rank`` images per process and step, in ``accumulation`` parts."""

    per_rank: int
    accumulation: int = 1
    pixel_per_rank: int | None = None  # stage 2's X^P images per process and step

    @property
    def micro(self) -> int:
        return self.per_rank // self.accumulation


def _split(field: str, global_batch: int, n_images: int, world_size: int, accumulation: int) -> int:
    """Per-process share of ``global_batch``; fails naming ``field`` when no batch can be formed."""
    parts = world_size * accumulation
    if global_batch % parts:
        fits = ", ".join(str(parts * m) for m in range(max(1, global_batch // parts), global_batch // parts + 3))
        raise ConfigError(f"{field} {global_batch} does not split into {world_size} processes x {accumulation} "
                          f"micro-batches: use a multiple of {parts} (e.g. {fits})")
    if n_images < global_batch:
        raise ConfigError(f"{field} {global_batch}: the stage has only {n_images} training images, fewer than "
                          "one global batch (incomplete batches are dropped); lower it")
    return global_batch // world_size


def stage_batches(cfg: TrainConfig, stage: str, data: TrainData, world_size: int) -> StageBatches:
    """The per-process batches of ``stage`` (the configs' batch sizes are global, as in the paper).

    Raises:
        ConfigError: naming the stage's field when its global batch does not split over the processes and
            accumulation steps, or is larger than its training set.
    """
    s = cfg.stage(stage)
    if stage == "seg_pretrain":
        return StageBatches(_split(f"{stage}.batch_size", s.batch_size, len(data.pixel_train), world_size,
                                   s.accumulation), s.accumulation)
    per_rank = _split(f"{stage}.batch_size", s.batch_size, len(data.image_train), world_size, s.accumulation)
    pixel = None
    if stage == "joint" and cfg.joint.train_generator:
        pixel = _split("joint.pixel_batch_size", cfg.joint.pixel_batch_size or s.batch_size, len(data.pixel_train),
                       world_size, s.accumulation)
    return StageBatches(per_rank, s.accumulation, pixel)


def check_batches(cfg: TrainConfig, data: TrainData, world_size: int) -> None:
    """Fail before any training when a stage that will run cannot form its batches."""
    for stage in STAGES:
        if cfg.stage(stage).epochs:
            stage_batches(cfg, stage, data, world_size)


def make_loader(
    dataset: FundusDataset, sampler: EpochSampler, batch_size: int, workers: int, device: torch.device
) -> DataLoader:
    """Batches of uint8 images (normalised on the device by the steps), pinned on CUDA.

    Workers are persistent: they start once per loader, not at every epoch or every pass of :func:`cycle`.
    """
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        drop_last=False,
        persistent_workers=workers > 0,
    )


def train_sampler(
    dataset: FundusDataset, seed: int, batch_size: int, dist: DistInfo, balanced: bool = False,
    shares: tuple[list[int], list[float]] | None = None,
) -> EpochSampler:
    """The training order of ``dataset``: a permutation per epoch, or with ``balanced`` (grades drawn equally often)
    or ``shares`` (``(source index of each record, share of each source)``, :attr:`TrainData.image_shares`) draws
    with replacement; with both, grades are balanced within each source."""
    grades = np.asarray([r.grade for r in dataset.records])
    weights = balanced_weights(grades, NUM_GRADES) if balanced else None
    if shares is not None:
        sources = np.asarray(shares[0])
        within = np.ones(len(grades))
        for k in range(len(shares[1]) if balanced else 0):
            within[sources == k] = balanced_weights(grades[sources == k], NUM_GRADES)
        weights = share_weights(sources, shares[1], within)
    return EpochSampler(
        len(dataset), seed, True, weights, dist.rank, dist.world_size, batch_size=batch_size, drop_last=True
    )


def cycle(loader: DataLoader, sampler: EpochSampler, start_step: int) -> Iterator[dict]:
    """Endless batches whose ``k``-th batch is a pure function of ``k``: pass ``k // n``, batch ``k % n``.

    Used for X^P in the joint stage, which is cycled alongside the larger X^I; starting at
    ``start_step`` resumes the sequence exactly.
    """
    per_pass = sampler.num_batches()
    epoch, offset = divmod(start_step, per_pass)
    while True:
        sampler.set_epoch(epoch, offset)
        yield from loader
        epoch, offset = epoch + 1, 0
