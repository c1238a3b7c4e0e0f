"""Time getting one IDRiD image raw (decode + preprocess) against reading it from the preprocessing cache.

Usage::

    .venv/bin/python benchmarks/bench_cache.py [--idrid PATH] [--image IDRiD_03] [--runs 7] [--sizes 512 1024]
    .venv/bin/python benchmarks/bench_cache.py --report   # the table from benchmarks/results/bench_cache.json

Writes ``benchmarks/results/bench_cache.json`` and prints its Markdown table (medians over ``--runs`` runs; the
source files sit in the OS page cache after the first run, so disk reads are not what is measured).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import results_io  # benchmarks/ is the script's folder

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


def report(data: dict) -> str:
    head = ["size", "decode (ms)", "preprocess (ms)", "raw total (ms)", "cache hit (ms)", "speed-up", "entry (KiB)",
            "compressed hit (ms)", "compressed entry (KiB)"]
    rows = [[str(r["size"]), f"{r['decode_ms']:.0f}", f"{r['preprocess_ms']:.0f}", f"{r['raw_ms']:.0f}",
             f"{r['hit_ms']:.1f}", f"{r['speedup']:.0f}x", f"{r['entry_kib']:.0f}", f"{r['compressed_hit_ms']:.1f}",
             f"{r['compressed_entry_kib']:.0f}"] for r in data["rows"]]
    return results_io.markdown(head, rows, "r" * len(head))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--idrid", type=Path, default=Path(os.environ.get("DRCOLLAB_IDRID", "/work/shared/data/IDRiD")))
    parser.add_argument("--image", default="IDRiD_03", help="an image with all four lesion masks")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    results_io.add_arguments(parser, "bench_cache")
    args = parser.parse_args()
    if args.report:
        print(report(results_io.read(args.json)))
        return
    if args.runs < 5:
        parser.error("--runs must be at least 5")
    record = idrid_record(args.idrid, args.image)
    if not record.image_path.is_file():
        parser.error(f"{record.image_path}: not found (set --idrid)")
    sample = load_sample(record)
    decode = median_ms(lambda: load_sample(record), args.runs)
    rows = []
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
        rows.append({"size": size, "decode_ms": decode, "preprocess_ms": prep, "raw_ms": raw, "hit_ms": hit,
                     "speedup": raw / hit, "entry_kib": kib, "compressed_hit_ms": zip_hit,
                     "compressed_entry_kib": zip_kib})
    h, w = sample.image.shape[:2]
    data = results_io.write(args.json, rows, image=f"{args.image}.jpg ({w}x{h}), {args.runs} runs",
                            load_average=round(os.getloadavg()[0], 2))
    print(report(data))


if __name__ == "__main__":
    main()
