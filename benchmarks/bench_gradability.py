"""The gradability check's measures on every IDRiD training image (all gradable) and on degraded copies of them.

Each image is decoded once and scaled to the check's working resolution (FOV diameter 512 px); the degraded
copies are made there, in memory: Gaussian blur, exposure scaled darker or brighter (clipped at 255), and a centre
crop inside the retina. Prints, per measure and variant, the distribution; writes every measure to
``OUT/measures.json`` and, per variant, each measure's range and the count flagged by the default thresholds of
:class:`drcollab.inference.gradability.GradabilityConfig` to ``benchmarks/results/bench_gradability.json``, whose
Markdown table it prints (``--report``: that table from the file, measuring nothing).

    nice -n 19 .venv/bin/python benchmarks/bench_gradability.py --idrid ../shared/data/IDRiD --out runs/bench_grad
    .venv/bin/python benchmarks/bench_gradability.py --report
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import results_io  # benchmarks/ is the script's folder

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


def distribution(rows: dict[str, list[dict]]) -> None:
    print("\nmeasure percentiles (min / 1% / 50% / 99% / max):")
    for m in MEASURES:
        print(f"  {m}")
        for name, recs in rows.items():
            vals = np.array([r[m] for r in recs if m in r])
            q = np.percentile(vals, [0, 1, 50, 99, 100]) if len(vals) else [np.nan] * 5
            print(f"    {name:12s} " + " / ".join(f"{x:8.4f}" for x in q))


def summary(rows: dict[str, list[dict]], cfg: GradabilityConfig) -> list[dict]:
    """Per variant: each measure's range, the largest burnt-out share and how many images are flagged."""
    out = []
    for name, recs in rows.items():
        measured = [r for r in recs if "sharpness" in r]  # the others had no field of view: flagged

        def span(m: str, measured: list[dict] = measured) -> list[float] | None:
            return [min(r[m] for r in measured), max(r[m] for r in measured)] if measured else None

        out.append({"variant": name, "mild": name in MILD, "n": len(recs),
                    "flagged": sum("sharpness" not in r or bool(reasons_from(r, cfg)) for r in recs),
                    "sharpness": span("sharpness"), "brightness": span("brightness"),
                    "bright_fraction_max": max((r["bright_fraction"] for r in measured), default=None),
                    "fov_fraction": span("fov_fraction")})
    return out


def report(data: dict) -> str:
    def span(v: list[float] | None, spec: str) -> str:
        return results_io.MISSING if v is None else f"{v[0]:{spec}} / {v[1]:{spec}}"

    head = ["variant", "sharpness min / max", "brightness min / max", "burnt out, max", "FOV fraction min / max",
            "flagged"]
    rows = [[r["variant"] + (" (mild)" if r["mild"] else ""), span(r["sharpness"], ".3f"), span(r["brightness"], ".1f"),
             results_io.number(None if r["bright_fraction_max"] is None else 100 * r["bright_fraction_max"], ".0f",
                               " %"),
             span(r["fov_fraction"], ".2f"), f"{r['flagged']} / {r['n']}"] for r in data["rows"]]
    return results_io.markdown(head, rows, "lllllr")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idrid", type=Path, default=Path("../shared/data/IDRiD"))
    parser.add_argument("--out", type=Path, default=Path("runs/bench_gradability"))
    parser.add_argument("--limit", type=int, default=0, help="First N images only (a quick look).")
    results_io.add_arguments(parser, "bench_gradability")
    args = parser.parse_args()
    if args.report:
        print(report(results_io.read(args.json)))
        return
    cfg = GradabilityConfig()
    paths = idrid_images(args.idrid)
    rows = measure_all(paths[: args.limit] if args.limit else paths, cfg)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "measures.json").write_text(json.dumps(rows))
    distribution(rows)
    print(report(results_io.write(args.json, summary(rows, cfg), thresholds=cfg.model_dump())))


if __name__ == "__main__":
    main()
