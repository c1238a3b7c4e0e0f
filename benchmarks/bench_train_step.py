"""Training-step speed: the default pipeline against a plain fp32 eager baseline, side by side.

Both run the joint stage's step (``training/steps.py`` ``joint_step``: G on X^P + X^I, the
lesion-attentive grader, D) with the same networks, batch and images, from a config (default
``configs/cpu/base.yaml`` on the IDRiD training split):

- ``plain``: fp32, contiguous tensors, every image decoded and preprocessed in the training
  process at every step (no cache, no loader workers);
- ``default``: what ``drcollab train`` does: the preprocessing cache, DataLoader workers (and pinned
  batches on CUDA), bf16 autocast and channels_last where the runtime's ``auto`` turns them on.

and each of the two with its batch already in memory (``... compute only``), to separate the
networks' speed-up from the data pipeline's. Each variant: one warm-up step, then ``--steps`` timed
steps; the table gives medians, the data-wait share (time blocked on the next batch / step time)
and the speed-up over ``plain``.

    .venv/bin/python benchmarks/bench_train_step.py --steps 5
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import time
from pathlib import Path

import torch

from drcollab.config import load_config
from drcollab.data.io import load_sample
from drcollab.data.preprocess import preprocess
from drcollab.models import LesionDiscriminator, LesionGenerator, LesionGrader
from drcollab.precision import use_bf16, use_channels_last
from drcollab.training.config import TrainConfig
from drcollab.training.data import build_data, make_loader, train_sampler
from drcollab.training.datasets import FundusDataset
from drcollab.training.steps import Nets, joint_step


def make_nets(cfg: TrainConfig, channels_last: bool) -> Nets:
    torch.manual_seed(0)
    nets = Nets(LesionGenerator(cfg.generator), LesionGrader(cfg.grader), LesionDiscriminator(cfg.discriminator))
    for name in ("generator", "grader", "discriminator"):
        model = getattr(nets, name).train()
        if channels_last:
            model.to(memory_format=torch.channels_last)
        setattr(nets, f"opt_{name}", torch.optim.Adam(model.parameters(), lr=2e-4, betas=(0.5, 0.999)))
    return nets


def to_device(batch: dict, channels_last: bool) -> dict:
    out = {}
    for key, value in batch.items():
        if torch.is_tensor(value) and value.dim() == 4 and channels_last:
            value = value.contiguous(memory_format=torch.channels_last)
        out[key] = value
    return out


VARIANTS = {  # name: (optimised precision and memory format, data source)
    "plain": (False, "raw"),
    "plain, compute only": (False, "memory"),
    "default": (True, "cache"),
    "default, compute only": (True, "memory"),
}


def run(cfg: TrainConfig, variant: str, steps: int) -> dict[str, float]:
    device = torch.device("cpu")
    optimised, source = VARIANTS[variant]
    bf16 = optimised and use_bf16(cfg.runtime.amp, device)
    channels_last = optimised and use_channels_last(cfg.runtime.channels_last, device)
    data = build_data(cfg.data)
    if source == "raw":
        def load(record):  # noqa: ANN001, ANN202 (decode + preprocess every time, as without the cache)
            sample = load_sample(record)
            return preprocess(sample.image, sample.masks, cfg.data.preprocess)
        workers = 0
    else:
        load, workers = data.cache.get, cfg.data.workers
    j = cfg.joint
    p_ds = FundusDataset(data.pixel_train, load, j.augment, labels="masks")
    i_ds = FundusDataset(data.image_train, load, j.augment, labels="grade")
    p_bs = j.pixel_batch_size or j.batch_size
    p_loader = make_loader(p_ds, train_sampler(p_ds, 0, p_bs, _single()), p_bs, workers, device)
    i_loader = make_loader(i_ds, train_sampler(i_ds, 1, j.batch_size, _single()), j.batch_size, workers, device)
    nets = make_nets(cfg, channels_last)
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    p_iter, i_iter = iter(p_loader), iter(i_loader)
    cached = None
    totals, waits = [], []
    for k in range(steps + 1):
        start = time.perf_counter()
        if source == "memory" and cached is not None:
            p_batch, i_batch = cached
        else:
            p_batch, i_batch = to_device(next(p_iter), channels_last), to_device(next(i_iter), channels_last)
            cached = (p_batch, i_batch)
        got = time.perf_counter()
        joint_step(nets, p_batch, i_batch, cfg, autocast, use_semi=j.semi)
        end = time.perf_counter()
        if k > 0:  # the first step warms up (allocator, oneDNN kernels, worker start-up)
            totals.append(end - start)
            waits.append(got - start)
    total = statistics.median(totals)
    return {"step_s": total, "wait_s": statistics.median(waits), "bf16": bf16, "channels_last": channels_last,
            "data": {"raw": "decoded every step", "cache": f"cache, {workers} workers", "memory": "in memory"}[source]}


def _single():  # noqa: ANN202
    from drcollab.training.distributed import DistInfo

    return DistInfo()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("configs/cpu/base.yaml"))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("overrides", nargs="*", help="key=value overrides of the config")
    args = parser.parse_args()
    cfg = load_config(TrainConfig, args.config, args.overrides)
    if args.threads:
        torch.set_num_threads(args.threads)
    elif cfg.runtime.threads:
        torch.set_num_threads(cfg.runtime.threads)
    results = {v: run(cfg, v, args.steps) for v in VARIANTS}
    base = results["plain"]["step_s"]
    print(f"config {args.config} {' '.join(args.overrides)}; torch {torch.__version__}, {torch.get_num_threads()} "
          f"threads, {platform.processor() or platform.machine()}; median of {args.steps} steps after 1 warm-up")
    print(f"batch: {cfg.joint.batch_size} X^I + {cfg.joint.pixel_batch_size or cfg.joint.batch_size} X^P images at "
          f"{cfg.data.preprocess.size} px")
    print()
    print("| variant | bf16 | channels_last | data | step (s) | waiting for data (s) | data share | vs plain |")
    print("|---|---|---|---|---:|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['bf16']} | {r['channels_last']} | {r['data']} | {r['step_s']:.2f} | "
              f"{r['wait_s']:.3f} | {100 * r['wait_s'] / r['step_s']:.1f}% | {base / r['step_s']:.2f}x |")
    compute = results["plain, compute only"]["step_s"] / results["default, compute only"]["step_s"]
    print(f"\nnetworks alone (compute only): {compute:.2f}x faster in the default precision")


if __name__ == "__main__":
    main()
