"""Do faster prediction paths give the same answers as the plain fp32 path? IDRiD fold 0, the release bundle.

Each variant (G tiled or whole, fp32 or bf16 autocast with channels_last) runs ``Predictor.predict_preprocessed``
on the same preprocessed images: the 11 pixel-labelled validation images of fold 0 and the first 40 graded
validation images. Against the reference (the bundle's own setting in fp32) it reports how many grades, DME risks
and referable flags differ, the largest absolute difference of a lesion probability (inside the field of view) and
each lesion's pixel AUC-PR (at G's preprocessed resolution, inside the field of view). How fast each runs:
``benchmarks/bench_predict_speed.py``.

    DRCOLLAB_IDRID=../shared/data/IDRiD .venv/bin/python benchmarks/bench_predict_equality.py
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import results_io  # benchmarks/ is the script's folder

from drcollab.constants import LESIONS
from drcollab.data.io import load_sample
from drcollab.data.preprocess import preprocess
from drcollab.evaluation.metrics import LesionCurves
from drcollab.evaluation.selection import read_eval_set, restrict_to_val_fold
from drcollab.inference.bundle import load_bundle
from drcollab.inference.predictor import Predictor
from drcollab.training.run_folder import read_val_fold

VARIANTS = {  # name: (tile (None: the bundle's), amp, channels_last)
    "fp32 tiles": (None, False, False),
    "fp32 + channels_last tiles": (None, False, True),
    "bf16 + channels_last tiles": (None, True, True),
    "fp32 whole": (0, False, False),
    "bf16 + channels_last whole": (0, True, True),
}


def load_images(bundle_dir: Path, idrid: Path, n_grading: int):
    eval_set = restrict_to_val_fold(read_eval_set(idrid, "idrid", "train"), read_val_fold(bundle_dir))
    cfg = load_bundle(bundle_dir).input_preprocess
    seg = [preprocess(s.image, s.masks, cfg) for s in map(load_sample, eval_set.segmentation)]
    grading = sorted(eval_set.grading, key=lambda r: r.name)[:n_grading]
    graded = [preprocess(load_sample(r).image, None, cfg) for r in grading]
    return seg, graded


def run_variant(bundle_dir: Path, tile, amp: bool, channels_last: bool, pres) -> list:
    predictor = Predictor(bundle_dir, tile=tile, amp=amp, channels_last=channels_last)
    return [predictor.predict_preprocessed([pre])[0] for pre in pres]


def compare(ref, preds, seg) -> dict:
    diff = max(float(np.abs(a.lesion_probs - b.lesion_probs).max()) for a, b in zip(ref, preds, strict=True))
    curves = LesionCurves()
    for pre, pred in zip(seg, preds[: len(seg)], strict=True):
        curves.update(pred.lesion_probs, pre.masks.astype(bool), pre.fov)
    return {
        "grades_differ": sum(a.grade != b.grade for a, b in zip(ref, preds, strict=True)),
        "dme_differ": sum(a.dme != b.dme for a, b in zip(ref, preds, strict=True)),
        "referable_differ": sum(a.referable != b.referable for a, b in zip(ref, preds, strict=True)),
        "max_abs_lesion_diff": round(diff, 4),
        "max_abs_probability_diff": round(max(float(np.abs(np.subtract(a.probabilities, b.probabilities)).max())
                                              for a, b in zip(ref, preds, strict=True)), 4),
        "auc_pr": {k: round(v.average_precision, 4) for k, v in curves.results().items()},
    }


def report(data: dict) -> str:
    n = data["images"]
    head = ["setting", f"grades differ (of {n['segmentation'] + n['grading']})",
            "DME differ", "referable differ", "max abs diff, lesion prob.", "max abs diff, grade prob.",
            "AUC-PR " + "/".join(data["lesions"])]
    rows = [[name, str(r["grades_differ"]), str(r["dme_differ"]),
             str(r["referable_differ"]), f"{r['max_abs_lesion_diff']:.4f}", f"{r['max_abs_probability_diff']:.4f}",
             " / ".join(f"{r['auc_pr'][k]:.4f}" for k in data["lesions"])] for name, r in data["rows"].items()]
    return results_io.markdown(head, rows, "lrrrrrl")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=Path("release/drcollab-idrid-cpu"))
    parser.add_argument("--idrid", type=Path, default=Path(os.environ.get("DRCOLLAB_IDRID", "../shared/data/IDRiD")))
    parser.add_argument("--grading", type=int, default=40)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    results_io.add_arguments(parser, "bench_predict_equality")
    args = parser.parse_args()
    if args.report:
        print(report(results_io.read(args.json)))
        return
    seg, graded = load_images(args.bundle, args.idrid, args.grading)
    pres = seg + graded
    rows, ref = {}, None
    for name in args.variants:
        preds = run_variant(args.bundle, *VARIANTS[name], pres)
        ref = ref or preds
        rows[name] = compare(ref, preds, seg)
        print(name, json.dumps(rows[name]), flush=True)
        data = results_io.write(args.json, rows, images={"segmentation": len(seg), "grading": len(graded)},
                                reference=args.variants[0], lesions=list(LESIONS))  # after every setting
    print(report(data))


if __name__ == "__main__":
    main()
