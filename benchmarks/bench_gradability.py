"""The gradability check's measures on every IDRiD training image (all gradable) and on degraded copies of them.

Each image is decoded once and scaled to the check's working resolution (FOV diameter 512 px); the degraded
copies are made there, in memory: Gaussian blur, exposure scaled darker or brighter (clipped at 255), and a centre
crop inside the retina. Prints, per measure and variant, the distribution, and per variant the share flagged by
the default thresholds of :class:`drcollab.inference.gradability.GradabilityConfig`; writes every measure to
``OUT/measures.json``.

    nice -n 19 .venv/bin/python benchmarks/bench_gradability.py --idrid ../shared/data/IDRiD --out runs/bench_grad
    .venv/bin/python benchmarks/bench_gradability.py --out runs/bench_grad --report   # from measures.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from drcollab.data.io import read_image
from drcollab.inference.gradability import GradabilityConfig, measure, reasons_from, working_copy

MEASURES = ("sharpness", "brightness", "dark_fraction", "bright_fraction", "fov_fraction")


def _blur(sigma: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda im: cv2.GaussianBlur(im, (0, 0), sigma)


def _exposure(gain: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda im: np.clip(im.astype(np.float32) * gain, 0, 255).astype(np.uint8)


def _centre_crop(fraction: float) -> Callable[[np.ndarray], np.ndarray]:
    """A square of ``fraction`` x the shorter side around the image centre (inside the FOV)."""
    def crop(im: np.ndarray) -> np.ndarray:
        h, w = im.shape[:2]
        s = round(min(h, w) * fraction)
        y0, x0 = (h - s) // 2, (w - s) // 2
        return np.ascontiguousarray(im[y0 : y0 + s, x0 : x0 + s])
    return crop


# variant -> degradation of the working-resolution image (FOV diameter 512 px); sigmas in working pixels
VARIANTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "blur_s1.5": _blur(1.5), "blur_s3": _blur(3), "blur_s6": _blur(6),
    "dark_x0.5": _exposure(0.5), "dark_x0.25": _exposure(0.25), "dark_x0.1": _exposure(0.1),
    "bright_x1.8": _exposure(1.8), "bright_x3": _exposure(3), "bright_x5": _exposure(5),
    "crop_0.6": _centre_crop(0.6), "crop_0.3": _centre_crop(0.3),
}
MILD = ("blur_s1.5", "dark_x0.5", "bright_x1.8")  # reported, but not required to be flagged: still gradable-ish


def idrid_images(root: Path) -> list[Path]:
    seg = sorted((root / "A. Segmentation" / "1. Original Images" / "a. Training Set").glob("*.jpg"))
    grading = sorted((root / "B. Disease Grading" / "1. Original Images" / "a. Training Set").glob("*.jpg"))
    return seg + grading


def measure_all(paths: list[Path], cfg: GradabilityConfig) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {"idrid": [], **{v: [] for v in VARIANTS}}
    start = time.perf_counter()
    for k, path in enumerate(paths):
        small = working_copy(read_image(path), cfg).image
        for name, image in [("idrid", small)] + [(v, f(small)) for v, f in VARIANTS.items()]:
            try:
                m = measure(image, cfg)
            except ValueError:  # no field of view: flagged
                m = {}
            rows[name].append({"image": path.name, **m})
        if k % 50 == 0:
            print(f"{k + 1}/{len(paths)} images, {time.perf_counter() - start:.0f} s", flush=True)
    return rows


def report(rows: dict[str, list[dict]], cfg: GradabilityConfig) -> None:
    print("\nmeasure percentiles (min / 1% / 50% / 99% / max):")
    for m in MEASURES:
        print(f"  {m}")
        for name, recs in rows.items():
            vals = np.array([r[m] for r in recs if m in r])
            q = np.percentile(vals, [0, 1, 50, 99, 100]) if len(vals) else [np.nan] * 5
            print(f"    {name:12s} " + " / ".join(f"{x:8.4f}" for x in q))
    print(f"\nflagged by the defaults {cfg.model_dump()}:")
    for name, recs in rows.items():
        flags = [not r.get("sharpness") or bool(reasons_from(r, cfg)) for r in recs]
        kinds: dict[str, int] = {}
        for r in recs:
            for reason in (reasons_from(r, cfg) if "sharpness" in r else ["no field of view:"]):
                key = reason.split(":")[0]
                kinds[key] = kinds.get(key, 0) + 1
        note = " (mild)" if name in MILD else ""
        print(f"  {name:12s}{note:7s} {sum(flags)}/{len(recs)} flagged  {kinds}")
    passed = [r["image"] for r in rows["idrid"] if "sharpness" not in r or reasons_from(r, cfg)]
    print("IDRiD images flagged:", passed or "none")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idrid", type=Path, default=Path("../shared/data/IDRiD"))
    parser.add_argument("--out", type=Path, default=Path("runs/bench_gradability"))
    parser.add_argument("--limit", type=int, default=0, help="First N images only (a quick look).")
    parser.add_argument("--report", action="store_true", help="Report from OUT/measures.json, measuring nothing.")
    args = parser.parse_args()
    cfg = GradabilityConfig()
    path = args.out / "measures.json"
    if args.report:
        rows = json.loads(path.read_text())
    else:
        paths = idrid_images(args.idrid)
        rows = measure_all(paths[: args.limit] if args.limit else paths, cfg)
        args.out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rows))
    report(rows, cfg)


if __name__ == "__main__":
    main()
