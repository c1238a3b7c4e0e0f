"""Time getting one IDRiD image raw (decode + preprocess) against reading it from the preprocessing cache.

Usage::

    .venv/bin/python benchmarks/bench_cache.py [--idrid PATH] [--image IDRiD_03] [--runs 7] [--sizes 512 1024]

Prints a Markdown table (medians over ``--runs`` runs; the source files sit in the OS page cache
after the first run, so disk reads are not what is measured).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from drcollab.config import PreprocessConfig
from drcollab.data.cache import PreprocessCache, read_entry
from drcollab.data.io import load_sample
from drcollab.data.preprocess import preprocess
from drcollab.data.records import Record

SEG = "A. Segmentation"
MASKS = (("1. Microaneurysms", "MA"), ("2. Haemorrhages", "HE"), ("3. Hard Exudates", "EX"), ("4. Soft Exudates", "SE"))


def idrid_record(root: Path, name: str) -> Record:
    gt = root / SEG / "2. All Segmentation Groundtruths/a. Training Set"
    masks = tuple(p if (p := gt / folder / f"{name}_{lesion}.tif").is_file() else None for folder, lesion in MASKS)
    image = root / SEG / "1. Original Images/a. Training Set" / f"{name}.jpg"
    return Record(name=name, image_path=image, mask_paths=masks)


def raw_get(record: Record, cfg: PreprocessConfig) -> object:
    """What a cache miss does: decode the JPEG and TIFFs, then preprocess."""
    sample = load_sample(record)
    return preprocess(sample.image, sample.masks, cfg)


def compressed_hit(cache: PreprocessCache, record: Record, runs: int) -> tuple[float, float]:
    """(median ms, KiB) of reading the same entry re-saved with ``np.savez_compressed``: the format not chosen."""
    path = cache.path(record)
    zipped = path.with_name("zipped.npz")
    with np.load(path, allow_pickle=False) as z:
        np.savez_compressed(zipped, **{k: z[k] for k in z.files})
    key = cache.key(record)
    return median_ms(lambda: read_entry(zipped, key), runs), zipped.stat().st_size / 1024


def median_ms(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def machine() -> str:
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if "model name" in line]
        model = names[0] if names else model
    return f"{model}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}, {platform.system()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--idrid", type=Path, default=Path(os.environ.get("DRCOLLAB_IDRID", "/work/shared/data/IDRiD")))
    parser.add_argument("--image", default="IDRiD_03", help="an image with all four lesion masks")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    args = parser.parse_args()
    if args.runs < 5:
        parser.error("--runs must be at least 5")
    record = idrid_record(args.idrid, args.image)
    if not record.image_path.is_file():
        parser.error(f"{record.image_path}: not found (set --idrid)")
    sample = load_sample(record)
    h, w = sample.image.shape[:2]
    lesions = sum(p is not None for p in record.mask_paths)
    print(f"{args.image}.jpg ({w}x{h}) with {lesions} mask TIFFs; median of {args.runs} runs; {machine()}\n")
    print(
        "| size | decode (ms) | preprocess (ms) | raw total (ms) | cache hit (ms) | speed-up | entry (KiB) "
        "| compressed hit (ms) | compressed entry (KiB) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    decode = median_ms(lambda: load_sample(record), args.runs)
    for size in args.sizes:
        cfg = PreprocessConfig(size=size)
        prep = median_ms(lambda cfg=cfg: preprocess(sample.image, sample.masks, cfg), args.runs)
        raw = median_ms(lambda cfg=cfg: raw_get(record, cfg), args.runs)
        with tempfile.TemporaryDirectory() as tmp:
            cache = PreprocessCache(tmp, cfg)
            cache.get(record)  # fill the entry
            hit = median_ms(lambda cache=cache: cache.get(record), args.runs)
            kib = cache.path(record).stat().st_size / 1024
            zip_hit, zip_kib = compressed_hit(cache, record, args.runs)
        print(
            f"| {size} | {decode:.0f} | {prep:.0f} | {raw:.0f} | {hit:.1f} | {raw / hit:.0f}x | {kib:.0f} "
            f"| {zip_hit:.1f} | {zip_kib:.0f} |"
        )
    print(f"\n1-minute load average at the end: {os.getloadavg()[0]:.2f} (other jobs share the machine)")


if __name__ == "__main__":
    main()
