"""``drcollab plan``: memory per GPU of each stage of a config, measured small on this machine and scaled up.

Each stage's real step (``seg_step``, ``grade_step``, ``joint_step``) runs on this machine's device at a small
image side (``measure_size``) for per-GPU batches of 1 and 2 (stage 2: 1 and 2 *units* of X^I + X^P images in
the config's ratio), in the precision the GPU will use. The peak memory the step allocates is read from the
CUDA allocator (``torch.cuda.max_memory_allocated``) or, on a CPU, from a dispatch-level count of the bytes of
every allocation (PyTorch's memory profiler). Their difference is the activation memory of one image (unit), which
scales with the pixels: ``(size / measure_size) ** 2``. A stage then needs on each GPU

    weights + Adam moments + (gradients, weight casts: the step's batch-independent part)
    + micro-batch x activations per image + RESERVE (CUDA context, cuDNN/cuBLAS workspaces, allocator slack).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from drcollab.constants import NUM_LESIONS
from drcollab.distributed import DistInfo
from drcollab.models.lesion_stats import num_stats
from drcollab.precision import Precision
from drcollab.training.config import STAGES, TrainConfig
from drcollab.training.loop import Context, Position
from drcollab.training.steps import JointBatch, Nets, grade_step, joint_route, joint_step, seg_step

GB = 1e9
RESERVE = 2 * GB


def _profiled_peak(prof: torch.profiler.profile) -> int:
    """The most bytes the CPU allocator held at once above the start, from a memory-profiled run."""
    now = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        now += event.self_cpu_memory_usage  # an operator's own allocations; frees outside any are "[memory]" events
        peak = max(peak, now)
    return peak


@contextmanager
def peak_meter(device: torch.device) -> Iterator[Callable[[], int]]:
    """``with peak_meter(d) as peak: ...``; after the block, ``peak()`` = the most bytes allocated at once in it.

    CUDA: the caching allocator's own count. CPU: PyTorch's memory profiler (every allocation and free of the
    CPU allocator, in order); tensors that existed before the block (weights, optimizer state) are not counted.
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        yield lambda: torch.cuda.max_memory_allocated(device) - before
        return
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
        yield lambda: _profiled_peak(prof)


@dataclass(frozen=True)
class StageMemory:
    """One stage's measured memory, scaled to its image side ``size``; ``unit`` = X^I (X^P) images per unit."""

    stage: str
    size: int
    checkpointing: bool
    state_bytes: float  # weights and Adam moments
    base_bytes: float  # the step's batch-independent allocations (gradients, bf16 weight copies)
    unit_bytes: float  # activations of one unit of images at `size`
    unit: tuple[int, int]  # (X^I or stage images, X^P images) per unit

    def need(self, units: int) -> float:
        """Bytes per GPU for a micro-batch of ``units`` units."""
        return self.state_bytes + self.base_bytes + units * self.unit_bytes + RESERVE

    def largest(self, budget: float) -> int:
        """The most units per GPU that fit in ``budget`` bytes (0: not even one)."""
        return max(0, math.floor((budget - self.need(0)) / self.unit_bytes))


class _NoFolder:
    """Stand-in run folder: no earlier stage has saved networks, so every stage builds fresh ones."""

    def stage_dir(self, stage: str) -> Path:
        return Path("/nonexistent-drcollab-plan") / stage


def stage_size(cfg: TrainConfig, stage: str) -> int:
    """The side of the images a stage's networks see: stage 1a's crops (or G's size), else the grader's."""
    if stage == "seg_pretrain":
        return cfg.seg_pretrain.augment.crop or cfg.data.seg_preprocess.size
    return cfg.data.preprocess.size


def _unit(cfg: TrainConfig, stage: str) -> tuple[int, int]:
    if stage != "joint" or not cfg.joint.train_generator:
        return 1, 0
    i, p = cfg.joint.batch_size, cfg.joint.pixel_batch_size or cfg.joint.batch_size
    g = math.gcd(i, p)
    return i // g, p // g


def _batch(n: int, size: int, labels: str, device: torch.device, stats: int = 0) -> dict:
    g = torch.Generator().manual_seed(n)
    batch = {"image": torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g),
             "fov": torch.ones(n, 1, size, size, dtype=torch.bool)}
    if labels == "masks":
        batch["masks"] = torch.rand(n, NUM_LESIONS, size, size, generator=g) > 0.99
    else:
        batch["grade"] = torch.randint(0, 5, (n,), generator=g)
        batch["dme"] = torch.randint(0, 3, (n,), generator=g)
        batch["presence"] = torch.randint(-1, 2, (n, NUM_LESIONS), generator=g)  # (B, L) codes, data/presence.py
        # A frozen G's precomputed masks and statistics (training/mask_inputs.py); steps that train G ignore them.
        batch["g_masks"] = torch.randint(0, 256, (n, NUM_LESIONS, size, size), dtype=torch.uint8, generator=g)
        if stats:
            batch["stats"] = torch.randn(n, stats, generator=g)
    return {k: v.to(device) for k, v in batch.items()}


def _step(cfg: TrainConfig, stage: str, nets: Nets, units: int, size: int, device: torch.device,
          autocast: Callable) -> None:
    i, p = _unit(cfg, stage)
    stats = num_stats(NUM_LESIONS) if cfg.grader.lesion_stats else 0
    if stage == "seg_pretrain":
        seg_step(nets, _batch(units, size, "masks", device), cfg, autocast)
    elif stage == "grade_pretrain":
        grade_step(nets, _batch(units, size, "grade", device, stats), cfg, autocast)
    else:
        p_batch = _batch(units * p, size, "masks", device) if p else None
        i_batch = _batch(units * i, size, "grade", device, stats)
        c_batch = _crop_batch(i_batch) if cfg.two_size_joint else None
        real = {k: p_batch[k] for k in ("image", "fov")} if nets.discriminator is not None else None  # D's view
        joint_step(nets, JointBatch(i_batch, p_batch, c_batch, real), cfg, autocast, joint_route(cfg))


def _crop_batch(i_batch: dict) -> dict:
    """Stage 2's X^I crops at G's size (training/views.py), measured at the grader's side: G's crops are
    smaller than the grader's images in the configs (256 vs 384 px), so this over-states G's share."""
    n = len(i_batch["image"])
    teacher = {"teacher_image": i_batch["image"], "teacher_masks": i_batch["g_masks"], "teacher_fov": i_batch["fov"]}
    if "stats" in i_batch:
        teacher["teacher_stats"] = i_batch["stats"]
    box = torch.tensor([[0.0, 0.0, 1.0]] * n, device=i_batch["image"].device)
    return {**i_batch, **teacher, "box": box, "flip": torch.zeros(n, 2, device=box.device)}


def _state_bytes(nets: Nets) -> int:
    tensors = [t for kind in ("generator", "grader", "discriminator") if (m := getattr(nets, kind)) is not None
               for t in list(m.parameters()) + list(m.buffers())]
    for opt in (nets.opt_generator, nets.opt_grader, nets.opt_discriminator):
        if opt is not None:
            tensors += [t for state in opt.state.values() for t in state.values() if torch.is_tensor(t)]
    return sum(t.numel() * t.element_size() for t in tensors)


def measure_stage(cfg: TrainConfig, stage: str, device: torch.device, precision: Precision, measure_size: int,
                  checkpointing: bool) -> StageMemory:
    """Run ``stage``'s step at ``measure_size`` for 1 and 2 units; scale its activations to the stage's size."""
    from drcollab.training.stages import build_nets  # stages imports the loaders; plan needs only the networks

    size = stage_size(cfg, stage)
    small = min(measure_size, size)
    runtime = cfg.runtime.model_copy(update={"activation_checkpointing": checkpointing, "compile": False})
    stage_cfg = cfg.stage(stage).model_copy(update={"accumulation": 1})
    cfg = cfg.model_copy(update={"runtime": runtime, stage: stage_cfg})
    autocast = precision.autocast()
    ctx = Context(cfg, DistInfo(device=device), _NoFolder(), autocast, False, Position(stage))
    nets = build_nets(ctx, stage)
    nets.scaler = precision.grad_scaler() if device.type == "cuda" else None
    _step(cfg, stage, nets, 1, small, device, autocast)  # creates the Adam moments
    peaks = []
    for units in (1, 2):
        for opt in (nets.opt_generator, nets.opt_grader, nets.opt_discriminator):
            if opt is not None:
                opt.zero_grad(set_to_none=True)
        with peak_meter(device) as peak:
            _step(cfg, stage, nets, units, small, device, autocast)
        peaks.append(peak())
    unit_small = max(peaks[1] - peaks[0], 1)
    return StageMemory(stage, size, checkpointing, _state_bytes(nets), peaks[0] - unit_small,
                       unit_small * (size / small) ** 2, _unit(cfg, stage))


def measure(cfg: TrainConfig, device: torch.device, precision: Precision, measure_size: int = 128
            ) -> list[StageMemory]:
    """Every stage that runs, without and with activation checkpointing."""
    return [measure_stage(cfg, stage, device, precision, measure_size, ckpt)
            for stage in STAGES if cfg.stage(stage).epochs for ckpt in (False, True)]


def plan_rows(cfg: TrainConfig, memories: list[StageMemory], gpus: int, gpu_bytes: float) -> list[dict]:
    """Per stage and checkpointing: the per-GPU micro-batch, its memory, whether it fits, the largest that does."""
    rows = []
    for m in memories:
        s = cfg.stage(m.stage)
        i, p = m.unit
        per_gpu, split = s.batch_size / gpus, s.batch_size % (gpus * s.accumulation) == 0
        units = per_gpu / s.accumulation / i
        need = m.need(math.ceil(units))
        largest = m.largest(gpu_bytes)
        row = {"stage": m.stage, "size": m.size, "checkpointing": m.checkpointing, "gpus": gpus,
               "gpu_gb": gpu_bytes / GB, "per_gpu": per_gpu, "micro": units * i, "split": split,
               "need_gb": need / GB, "fits": split and need <= gpu_bytes, "largest": largest * i,
               "largest_pixel": largest * p if p else None}
        if largest and split:
            n = int(per_gpu // i)  # units per GPU and step
            row["accumulation"] = next((k for k in range(1, n + 1) if n % k == 0 and n / k <= largest), None)
        rows.append(row)
    return rows


def format_rows(rows: list[dict]) -> str:
    """A Markdown table of :func:`plan_rows`."""
    lines = ["| stage | px | ckpt | GPUs x GB | batch per GPU | memory per GPU | fits | largest per GPU | "
             "accumulation that fits |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        largest = f"{r['largest']}" + (f" + {r['largest_pixel']} X^P" if r["largest_pixel"] is not None else "")
        batch = f"{r['micro']:g}" if r["split"] else f"{r['per_gpu']:g} (does not split)"
        acc = r.get("accumulation")
        acc_text = "none fits" if acc is None else str(acc)
        lines.append(f"| {r['stage']} | {r['size']} | {'on' if r['checkpointing'] else 'off'} | {r['gpus']} x "
                     f"{r['gpu_gb']:.0f} | {batch} | {r['need_gb']:.1f} GB | {'yes' if r['fits'] else 'no'} | "
                     f"{largest} | {acc_text} |")
    return "\n".join(lines)


@contextmanager
def quiet_native_logs() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null inside the block: the profiler's C++ start/stop lines are noise here."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def parse_memory(text: str) -> float:
    """``80GB``, ``141 GB``, ``80e9`` -> bytes (GB = 1e9 bytes, as GPU data sheets count)."""
    t = text.strip().upper().replace(" ", "")
    for suffix, scale in (("GIB", 2**30), ("GB", GB), ("G", GB)):
        if t.endswith(suffix):
            return float(t[: -len(suffix)]) * scale
    return float(t)
