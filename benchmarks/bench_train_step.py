"""Training-step speed: the default pipeline against a plain fp32 eager baseline, side by side.

Every variant runs the joint stage's step (``training/steps.py`` ``joint_step``: G on X^P + X^I,
the lesion-attentive grader, D) with the same networks and the same global batch of images from a
config (default ``configs/cpu/base.yaml`` on the IDRiD training split):

- ``plain``: one process with torch's default threads (the whole batch), fp32, contiguous tensors, every image
  decoded and preprocessed in the training process at every step (no cache, no loader workers);
- ``default``: what ``drcollab train`` does with the config: the preprocessing cache, its DataLoader
  workers, bf16 autocast and channels_last where ``auto`` turns them on, and
  ``runtime.cpu_processes`` single-threaded DDP ranks, each taking its share of the config's global batches;
- each of the two again with its batch already in memory (``compute only``), to separate the
  networks' speed from the data pipeline's.

One warm-up step, then ``--steps`` timed steps; the table gives medians (for DDP: rank 0's), the
time blocked waiting for the next batch and its share of the step, and the speed-up over ``plain``. Writes
``benchmarks/results/bench_train_step.json`` and prints its Markdown table; ``--report`` prints the table from that
file, measuring nothing.

    .venv/bin/python benchmarks/bench_train_step.py --steps 5
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import results_io  # benchmarks/ is the script's folder
import torch
from torch.nn.parallel import DistributedDataParallel

from drcollab.config import load_config
from drcollab.data.io import load_sample
from drcollab.data.preprocess import preprocess
from drcollab.distributed import DistInfo, setup, teardown
from drcollab.models import LesionDiscriminator, LesionGenerator, LesionGrader
from drcollab.precision import use_bf16, use_channels_last
from drcollab.training.config import TrainConfig
from drcollab.training.data import build_data, make_loader, train_sampler
from drcollab.training.datasets import FundusDataset
from drcollab.training.steps import JointBatch, Nets, joint_step

VARIANTS = {  # name: (optimised: precision, memory format and processes; data source)
    "plain": (False, "raw"),
    "plain, compute only": (False, "memory"),
    "default": (True, "cache"),
    "default, compute only": (True, "memory"),
    "default precision, 1 process, compute only": (True, "memory"),
}


def make_nets(cfg: TrainConfig, channels_last: bool, dist: DistInfo) -> Nets:
    torch.manual_seed(0)
    nets = Nets(LesionGenerator(cfg.generator), LesionGrader(cfg.grader), LesionDiscriminator(cfg.discriminator))
    for name in ("generator", "grader", "discriminator"):
        model = getattr(nets, name).train()
        if channels_last:
            model.to(memory_format=torch.channels_last)
        setattr(nets, f"opt_{name}", torch.optim.Adam(model.parameters(), lr=2e-4, betas=(0.5, 0.999)))
        if dist.enabled:
            setattr(nets, name, DistributedDataParallel(model))
    return nets


def to_device(batch: dict, channels_last: bool) -> dict:
    return {k: v.contiguous(memory_format=torch.channels_last) if channels_last and torch.is_tensor(v) and v.dim() == 4
            else v for k, v in batch.items()}


def run(cfg: TrainConfig, variant: str, steps: int, dist: DistInfo) -> dict:
    """Time ``steps`` joint steps of one variant in this process (one rank of it under DDP)."""
    optimised, source = VARIANTS[variant]
    bf16 = optimised and use_bf16(cfg.runtime.amp, dist.device)
    channels_last = optimised and use_channels_last(cfg.runtime.channels_last, dist.device)
    data = build_data(cfg.data, dist)  # both sets: the joint step uses X^P and X^I
    if source == "raw":
        def load(record):  # noqa: ANN001, ANN202 (decode + preprocess every time, as without the cache)
            sample = load_sample(record)
            return preprocess(sample.image, sample.masks, cfg.data.preprocess)
        workers = 0
    else:
        load, workers = data.cache.get, cfg.data.workers
    j = cfg.joint
    p_bs, i_bs = (j.pixel_batch_size or j.batch_size) // dist.world_size, j.batch_size // dist.world_size  # global
    p_ds = FundusDataset(data.pixel_train, load, j.augment, labels="masks")
    i_ds = FundusDataset(data.image_train, load, j.augment, labels="grade", presence=cfg.data.presence)
    r_ds = FundusDataset(data.pixel_train, load, j.augment, labels="image")  # D's real view (training/views.py)
    p_loader = make_loader(p_ds, train_sampler(p_ds, 0, p_bs, dist), p_bs, workers, dist.device)
    i_loader = make_loader(i_ds, train_sampler(i_ds, 1, i_bs, dist), i_bs, workers, dist.device)
    r_loader = make_loader(r_ds, train_sampler(r_ds, 2, p_bs, dist), p_bs, workers, dist.device)
    nets = make_nets(cfg, channels_last, dist)
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    p_iter, i_iter, r_iter = iter(p_loader), iter(i_loader), iter(r_loader)
    cached = None
    totals, waits = [], []
    for k in range(steps + 1):
        start = time.perf_counter()
        if source == "memory" and cached is not None:
            batch = cached
        else:
            real = to_device(next(r_iter), channels_last) if nets.discriminator is not None else None
            batch = JointBatch(to_device(next(i_iter), channels_last), to_device(next(p_iter), channels_last), None,
                               real)
            cached = batch
        got = time.perf_counter()
        joint_step(nets, batch, cfg, autocast)
        if k > 0:  # the first step warms up (allocator, oneDNN kernels, worker start-up)
            totals.append(time.perf_counter() - start)
            waits.append(got - start)
    data_text = {"raw": "decoded every step", "cache": f"cache, {workers} loader workers", "memory": "in memory"}
    return {"step_s": statistics.median(totals), "wait_s": statistics.median(waits), "bf16": bf16,
            "channels_last": channels_last, "data": data_text[source], "processes": dist.world_size,
            "threads": torch.get_num_threads()}


def run_ranks(args: argparse.Namespace, variant: str, processes: int) -> dict:
    """Run one variant under ``torchrun`` in ``processes`` single-threaded ranks; rank 0's timings."""
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench_train_step_{os.getpid()}.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
           __file__, "--config", str(args.config), "--steps", str(args.steps), "--worker", variant,
           "--result", str(out), *args.overrides]
    subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    result = json.loads(out.read_text())
    out.unlink()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("configs/cpu/base.yaml"))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help="key=value overrides of the config")
    results_io.add_arguments(parser, "bench_train_step")
    args = parser.parse_args()
    if args.report:
        print(report(results_io.read(args.json)))
        return
    cfg = load_config(TrainConfig, args.config, args.overrides)
    if args.worker:  # one rank of a DDP variant, launched by run_ranks
        dist = setup("cpu")
        torch.set_num_threads(1)
        result = run(cfg, args.worker, args.steps, dist)
        if dist.is_main:
            args.result.write_text(json.dumps(result))
        teardown()
        return
    processes = cfg.runtime.cpu_processes
    results = {}
    for variant, (optimised, _) in VARIANTS.items():
        if optimised and processes > 1 and "1 process" not in variant:
            results[variant] = run_ranks(args, variant, processes)
        else:
            results[variant] = run(cfg, variant, args.steps, DistInfo())
    base = results["plain"]["step_s"]
    rows = [{"variant": name, **r, "data_share": r["wait_s"] / r["step_s"], "speedup": base / r["step_s"]}
            for name, r in results.items()]
    j = cfg.joint
    batch = (f"{j.batch_size} X^I + {j.pixel_batch_size or j.batch_size} X^P images at {cfg.data.preprocess.size} px, "
             f"median of {args.steps} steps after 1 warm-up")
    print(report(results_io.write(args.json, rows, config=" ".join([str(args.config), *args.overrides]),
                                  global_batch=batch)))


def report(data: dict) -> str:
    head = ["variant", "processes x threads", "bf16", "channels_last", "data", "step (s)", "waiting for data (s)",
            "data share", "vs plain"]
    rows = [[r["variant"], f"{r['processes']} x {r['threads']}", str(r["bf16"]), str(r["channels_last"]), r["data"],
             f"{r['step_s']:.2f}", f"{r['wait_s']:.3f}", f"{100 * r['data_share']:.1f}%", f"{r['speedup']:.2f}x"]
            for r in data["rows"]]
    return results_io.markdown(head, rows, "lllllrrrr")


if __name__ == "__main__":
    main()
