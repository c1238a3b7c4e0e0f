"""Reading the records and planning the cache fill of a large dataset: time and memory per listing size.

Writes a synthetic EyePACS layout (``trainLabels.csv`` + ``train/<name>.jpeg``, empty files: nothing is decoded)
of each ``--sizes`` count under ``--root``, then times, in a fresh process each:

- ``read_records``: the CSV, the folder index and one ``Record`` per image (``data/eyepacs.py``);
- planning the cache fill as ``training/data.py`` ``build_data`` does: each record's cache key (its file's
  resolved path, size and mtime hashed with the config) and whether its entry exists, in an empty cache, then
  the shares of 8 ranks (``fill_share``'s slicing);

and their peak Python memory (``tracemalloc``, a second pass) and the process's peak RSS. Writes
``benchmarks/results/bench_listing.json`` and prints its Markdown table; ``--report`` prints the table from that
file, measuring nothing.

    .venv/bin/python benchmarks/bench_listing.py --sizes 20000 100000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import results_io  # benchmarks/ is the script's folder

from drcollab.config import PreprocessConfig
from drcollab.data.cache import PreprocessCache
from drcollab.data.sources import DatasetSpec, read_records


def write_listing(root: Path, n: int) -> Path:
    """``root/trainLabels.csv`` and ``n`` empty ``root/train/<i>_left.jpeg`` files (kept between runs)."""
    images = root / "train"
    if (root / "trainLabels.csv").is_file() and sum(1 for _ in images.iterdir()) == n:
        return root
    images.mkdir(parents=True, exist_ok=True)
    lines = ["image,level"]
    for i in range(n):
        (images / f"{i}_left.jpeg").touch()
        lines.append(f"{i}_left,{i % 5}")
    (root / "trainLabels.csv").write_text("\n".join(lines) + "\n")
    return root


def run(root: Path, cache_root: Path) -> dict:
    """One pass: read, plan the fill, split into 8 shares; seconds of each part."""
    t0 = time.perf_counter()
    records = read_records(DatasetSpec(format="eyepacs", root=root))
    t1 = time.perf_counter()
    cache = PreprocessCache(cache_root, PreprocessConfig(size=1024))
    missing = [(cache, r) for r in records if not cache.path(r).is_file()]
    shares = [missing[rank::8] for rank in range(8)]
    t2 = time.perf_counter()
    assert len(missing) == len(records) == sum(len(s) for s in shares)
    return {"n": len(records), "read_s": t1 - t0, "plan_s": t2 - t1}


def worker(root: Path) -> dict:
    with tempfile.TemporaryDirectory() as cache_root:
        timed = run(root, Path(cache_root))
        tracemalloc.start()
        run(root, Path(cache_root))
        timed["python_peak_mb"] = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
    timed["rss_peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
    return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20000, 100000])
    parser.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "drcollab_bench_listing")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    results_io.add_arguments(parser, "bench_listing")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker)))
        return
    if args.report:
        print(report(results_io.read(args.json)))
        return
    rows = []
    for n in args.sizes:
        root = write_listing(args.root / str(n), n)
        out = subprocess.run([sys.executable, __file__, "--worker", str(root)], check=True, capture_output=True,
                             text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        rows.append({**r, "per_image_us": (r["read_s"] + r["plan_s"]) / r["n"] * 1e6})
    print(report(results_io.write(args.json, rows)))


def report(data: dict) -> str:
    head = ["images", "read_records", "plan the cache fill", "per image", "Python peak", "process peak RSS"]
    rows = [[f"{r['n']:,}", f"{r['read_s']:.2f} s", f"{r['plan_s']:.2f} s", f"{r['per_image_us']:.0f} µs",
             f"{r['python_peak_mb']:.0f} MB", f"{r['rss_peak_mb']:.0f} MB"] for r in data["rows"]]
    return results_io.markdown(head, rows, "llllll")


if __name__ == "__main__":
    main()
