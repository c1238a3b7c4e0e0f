"""How much of each lesion's AUC-PR a G at a given resolution can reach at all: the resolution ceiling.

For the validation images of fold 0 (the same fold as ``bench_seg.py``), each lesion's ground truth is taken to
G's preprocessed size and back the way the pipeline does it (``Geometry.crop_resize`` / ``resize_masks``, then
``Geometry.to_original``, bilinear) and scored, pooled at the original 4288x2848 like ``drcollab evaluate``:

- ``target``: the boolean mask G is trained on at that size (``preprocess.mask_threshold``), mapped back: what a G
  that reproduced its training targets perfectly would score;
- ``area``: the share of each preprocessed pixel that is lesion (area average), mapped back: the best any map at
  that size can rank the original pixels.

    DRCOLLAB_IDRID=../shared/data/IDRiD .venv/bin/python benchmarks/seg_ceiling.py --sizes 384 768 1152 1536
    .venv/bin/python benchmarks/seg_ceiling.py --report   # the table from benchmarks/results/seg_ceiling.json

No network runs; about a minute per size on one core (reading the 11 images and their masks once). Writes
``{"SIZE/ORACLE": {lesion: AUC-PR}}`` to ``benchmarks/results/seg_ceiling.json`` and prints its Markdown table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import results_io  # benchmarks/ is the script's folder

from drcollab.config import PreprocessConfig
from drcollab.constants import LESIONS
from drcollab.data.folds import split_records
from drcollab.data.fov import detect_fov
from drcollab.data.idrid import read_idrid_segmentation
from drcollab.data.io import load_masks, read_image
from drcollab.data.preprocess import Geometry
from drcollab.evaluation.metrics import LesionCurves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[384, 768, 1152, 1536])
    parser.add_argument("--fold", type=int, default=0)
    results_io.add_arguments(parser, "seg_ceiling")
    args = parser.parse_args()
    if results_io.printed_report(args, report):
        return
    cfg = PreprocessConfig()
    records = read_idrid_segmentation(Path(results_io.idrid_root()), "train")
    _, val = split_records(records, 5, args.fold, 0)  # configs/cpu/base.yaml: n_folds 5, fold_seed 0
    curves = {(size, kind): LesionCurves() for size in args.sizes for kind in ("target", "area")}
    for record in val:
        image = read_image(record.image_path)
        masks = load_masks(record, image.shape[:2])  # (L, H, W) bool
        fov = detect_fov(image, cfg.fov_threshold)
        for size in args.sizes:
            geometry = Geometry.from_fov(fov, image.shape[:2], size)
            target = geometry.resize_masks(masks, cfg.mask_threshold).astype(np.float32)  # (L, S, S)
            area = np.stack([geometry.crop_resize(m.astype(np.float32)) for m in masks])  # (L, S, S)
            for kind, maps in (("target", target), ("area", area)):
                back = np.clip(geometry.to_original(maps), 0.0, 1.0)  # (L, H, W)
                curves[size, kind].update(back, masks)
        print(f"{record.name} done", flush=True)
    results = {f"{size}/{kind}": {lesion: c.results()[lesion].average_precision for lesion in LESIONS}
               for (size, kind), c in curves.items()}
    args.json.write_text(json.dumps(results, indent=1))
    print(report(results))


def report(results: dict[str, dict[str, float]]) -> str:
    rows = [[*key.split("/"), *(f"{r[k]:.3f}" for k in LESIONS)] for key, r in results.items()]
    return results_io.markdown(["G's size", "oracle", *(f"{k} AUC-PR" for k in LESIONS)], rows,
                               "rl" + "r" * len(LESIONS))


if __name__ == "__main__":
    main()
