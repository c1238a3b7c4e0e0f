"""How a bundle's grades drift as a photo is shrunk: the default minimum field-of-view size for grading.

The model resizes each photo's field of view (FOV) to its working size (the bundle's preprocessing size, G's when it
has its own); a photo with fewer pixels across reaches it enlarged. This grades IDRiD grading photos (IDRiD_001 and
N random ones of the bundle's validation fold) at their own size and shrunk (area interpolation, in memory) to each
width of ``--widths``, and reports, per FOV diameter / working size, how many keep the grade and the referable flag
they get at full size, the mean total-variation distance of the grade probabilities from the full-size ones, and
how many are graded right. ``GradabilityConfig.min_fov_fraction`` (``drcollab.constants.MIN_FOV_FRACTION``) was
chosen from it.

    nice -n 19 .venv/bin/python benchmarks/bench_fov_size.py --idrid ../shared/data/IDRiD --out runs/bench_fov
    .venv/bin/python benchmarks/bench_fov_size.py --out runs/bench_fov --report   # from rows.jsonl
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import torch

from drcollab.data.fov import detect_fov
from drcollab.data.io import read_image
from drcollab.evaluation.selection import read_eval_set, restrict_to_val_fold
from drcollab.inference.predictor import Predictor

ROWS_FILE = "rows.jsonl"


def shrink(image: np.ndarray, width: int) -> np.ndarray:
    """``(H, W, 3)`` -> ``width`` px wide, the aspect kept (never up)."""
    h, w = image.shape[:2]
    if width >= w:
        return image
    return cv2.resize(image, (width, round(h * width / w)), interpolation=cv2.INTER_AREA)


def measure(idrid: Path, bundle: Path, n: int, widths: list[int], rows_path: Path) -> None:
    """Append one JSON row per (photo, width) to ``rows_path``; photos already there are skipped."""
    done = {json.loads(line)["name"] for line in rows_path.read_text().splitlines()} if rows_path.exists() else set()
    full = read_eval_set(idrid, "idrid", "train")
    fold = restrict_to_val_fold(full, bundle).grading
    picked = np.random.default_rng(0).choice(len(fold), n, replace=False)
    records = [r for r in full.grading if r.name == "IDRiD_001"] + [fold[i] for i in sorted(picked)]
    predictor = Predictor(bundle)
    for record in records:
        if record.name in done:
            continue
        image = read_image(record.image_path)
        for width in widths:
            start = time.perf_counter()
            small = shrink(image, width)
            pred = predictor.predict([small])[0]
            row = {"name": record.name, "true": record.grade, "width": small.shape[1],
                   "fov": round(2 * detect_fov(small).radius), "grade": pred.grade, "probs": pred.probabilities,
                   "referable": pred.referable, "dme": pred.dme, "secs": round(time.perf_counter() - start, 1)}
            with rows_path.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)


def report(rows: list[dict], model_size: int) -> None:
    by_name: dict[str, dict[int, dict]] = defaultdict(dict)
    for r in rows:
        by_name[r["name"]][r["width"]] = r
    full = {name: d[max(d)] for name, d in by_name.items()}
    widths = sorted({r["width"] for r in rows}, reverse=True)
    print(f"working size {model_size} px; per width: FOV px (median), FOV / working size, same grade as at full size, "
          "same referable flag, mean total-variation distance of the grade probabilities, graded right")
    for width in widths:
        pairs = [(d[width], full[name]) for name, d in by_name.items() if width in d]
        fov = float(np.median([a["fov"] for a, _ in pairs]))
        same = sum(a["grade"] == b["grade"] for a, b in pairs)
        referable = sum(a["referable"] == b["referable"] for a, b in pairs)
        tv = np.mean([0.5 * np.abs(np.subtract(a["probs"], b["probs"])).sum() for a, b in pairs])
        right = sum(a["grade"] == a["true"] for a, _ in pairs)
        print(f"  {width:5d} px wide  FOV {fov:6.0f} px  {fov / model_size:4.2f}  same grade {same:3d}/{len(pairs)}  "
              f"same referable {referable:3d}/{len(pairs)}  TV {tv:.3f}  right {right:3d}/{len(pairs)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idrid", type=Path, default=Path("../shared/data/IDRiD"))
    parser.add_argument("--bundle", type=Path, default=Path("release/drcollab-idrid-cpu"),
                        help="A bundle whose folder holds the config.yaml of its run (for its validation fold).")
    parser.add_argument("--out", type=Path, default=Path("runs/bench_fov"))
    parser.add_argument("-n", type=int, default=30, help="Validation-fold photos besides IDRiD_001.")
    parser.add_argument("--widths", default="2144,1400,1200,1000,800,600", help="Comma-separated widths (px).")
    parser.add_argument("--report", action="store_true", help=f"Report from OUT/{ROWS_FILE}, predicting nothing.")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows_path = args.out / ROWS_FILE
    if not args.report:
        args.out.mkdir(parents=True, exist_ok=True)
        measure(args.idrid, args.bundle, args.n, [int(w) for w in args.widths.split(",")], rows_path)
    rows = [json.loads(line) for line in rows_path.read_text().splitlines()]
    report(rows, Predictor(args.bundle).input_preprocess.size)


if __name__ == "__main__":
    main()
