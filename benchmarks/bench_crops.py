"""Cost of one augmented training crop: the paper's path (rotate the whole image, then ``v2.RandomCrop``) against
the centred window of ``data/crops.py`` (cut a window of the crop's diagonal, rotate it, centre-crop).

    DRCOLLAB_IDRID=../shared/data/IDRiD .venv/bin/python benchmarks/bench_crops.py --sizes 768 1152 1536

One IDRiD segmentation image from the preprocessing cache (filled on first use), 256-px crops with flips and
rotation, one thread; the median of ``--runs`` items per variant, the variants interleaved in one run. Writes
``benchmarks/results/bench_crops.json`` and prints its Markdown table; ``--report`` prints the table from that file,
measuring nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import results_io  # benchmarks/ is the script's folder
import torch

from drcollab.config import PreprocessConfig
from drcollab.data.cache import PreprocessCache
from drcollab.data.idrid import read_idrid_segmentation
from drcollab.data.transforms import AugmentConfig
from drcollab.training.datasets import FundusDataset

VARIANTS = {
    "uniform (rotate image, RandomCrop)": AugmentConfig(crop=256),
    "centred window, lesion 0.5 / FOV": AugmentConfig(crop=256, lesion_crops=0.5, crop_centre="fov"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[768, 1152, 1536])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--cache", default=os.environ.get("DRCOLLAB_CACHE", "cache"))
    results_io.add_arguments(parser, "bench_crops")
    args = parser.parse_args()
    if args.report:
        print(report(results_io.read(args.json)))
        return
    torch.set_num_threads(1)
    record = read_idrid_segmentation(os.environ["DRCOLLAB_IDRID"])[0]
    rows = []
    for size in args.sizes:
        cache = PreprocessCache(args.cache, PreprocessConfig(size=size))
        pre = cache.get(record)
        sets = {name: FundusDataset([record], lambda r, p=pre: p, cfg) for name, cfg in VARIANTS.items()}
        times: dict[str, list[float]] = {name: [] for name in VARIANTS}
        for seed in range(args.runs):
            for name, ds in sets.items():
                start = time.perf_counter()
                ds[(0, seed)]
                times[name].append(time.perf_counter() - start)
        rows.append({"size": size, "ms": {name: 1000 * statistics.median(t) for name, t in times.items()}})
    print(report(results_io.write(args.json, rows, image=record.name, settings=f"median of {args.runs} crops")))


def report(data: dict) -> str:
    variants = list(data["rows"][0]["ms"])
    rows = [[str(r["size"]), *(f"{r['ms'][v]:.1f}" for v in variants)] for r in data["rows"]]
    return results_io.markdown(["G size", *(f"{v} (ms)" for v in variants)], rows, "r" * (len(variants) + 1))


if __name__ == "__main__":
    main()
