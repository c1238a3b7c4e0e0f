"""What a grade loses when the photo is smaller than the model's working size.

IDRiD's graded photos here are 2144 x 1424 px, their field of view about 1,400 px across; Messidor-2's are 512 px
and EyePACS-256's 256 px. This benchmark shrinks IDRiD's validation fold 0 (83 photos no model here trained on) to a
height of 1024, 512 and 256 px (area interpolation, JPEG quality 95, DME labels kept) and scores each model on every
size as it is (``drcollab evaluate --format generic --min-fov-fraction 0``: each photo is resized to the model's
working size, up-sampled when smaller, as in training):

* ``release``: ``release/drcollab-idrid-cpu`` (G at 1152 px, the grader at 384 px with G's lesion statistics);
* ``all_sources``: the plain grader of ``benchmarks/bench_sources.py``'s ``all`` row (384 px, no G), if that run
  exists (``--sources-run``);
* ``all_lesion_stats``: its ``all_lesion_stats`` row, the release's recipe (G at 1152 px, G's lesion statistics)
  trained on all three sources, if that run exists (``--stats-run``).

Reported per model and size: DR accuracy and kappa, Table 2's referral AUC (DR >= 2 or referable DME) and the share of
photos whose predicted grade differs from the full-size photo's.

    DRCOLLAB_IDRID=../shared/data/IDRiD .venv/bin/python benchmarks/bench_small_photos.py --out runs/small_photos
    .venv/bin/python benchmarks/bench_small_photos.py --report
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path

import cv2
import results_io
from reproduce_idrid import DRCOLLAB, sh
from results_io import markdown, number

from drcollab.data.folds import split_records
from drcollab.data.sources import DatasetSpec, read_records
from drcollab.inference.bundle import BUNDLE_FILE, find_bundle

HEIGHTS = [0, 1024, 512, 256]  # 0: the photo as it is
RELEASE = Path(__file__).resolve().parent.parent / "release/drcollab-idrid-cpu"


def shrink(records: list, height: int, root: Path) -> None:
    """``root`` in the generic layout: each photo at ``height`` px tall (0: unchanged), its grade and DME."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for r in records:
        image = cv2.imread(str(r.image_path), cv2.IMREAD_COLOR)
        if height:
            h, w = image.shape[:2]
            image = cv2.resize(image, (round(w * height / h), height), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(root / "images" / f"{r.name}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        rows.append({"path": f"images/{r.name}.jpg", "grade": r.grade, "dme": "" if r.dme is None else r.dme})
    with (root / "labels.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, ["path", "grade", "dme"])
        writer.writeheader()
        writer.writerows(rows)


def weights_of(checkpoint: Path) -> str:
    """The sha256 of each part of the bundle at ``checkpoint``: an evaluation is reused only for the same weights."""
    parts = json.loads((find_bundle(checkpoint) / BUNDLE_FILE).read_text())["parts"]
    return json.dumps({k: v["sha256"] for k, v in sorted(parts.items())})


def predicted(folder: Path) -> dict[str, int]:
    with (folder / "predictions.csv").open() as f:
        return {r["name"]: int(r["predicted"]) for r in csv.DictReader(f) if r["predicted"] != ""}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/small_photos"))
    parser.add_argument("--sources-run", type=Path, default=Path("runs/bench_sources/all"))
    parser.add_argument("--stats-run", type=Path, default=Path("runs/bench_sources/all_lesion_stats"))
    results_io.add_arguments(parser, "bench_small_photos")
    args = parser.parse_args()
    if results_io.printed_report(args, report):
        return
    _, val = split_records(read_records(DatasetSpec(format="idrid-grade", root=results_io.idrid_root())), 5, 0, 0)
    models = {"release": RELEASE}
    for model, run in (("all_sources", args.sources_run), ("all_lesion_stats", args.stats_run)):
        if (run / "model/bundle.json").is_file():
            models[model] = run
    weights = {model: weights_of(checkpoint) for model, checkpoint in models.items()}
    rows = []
    for height in HEIGHTS:
        photos = args.out / f"photos_{height or 'full'}"
        if not (photos / "labels.csv").is_file():
            shrink(val, height, photos)
        for model, checkpoint in models.items():
            target = args.out / "eval" / model / (photos.name)
            stamp = target / "weights.json"
            if not (target / "metrics.json").is_file() or not stamp.is_file() or stamp.read_text() != weights[model]:
                shutil.rmtree(target, ignore_errors=True)
                sh([*DRCOLLAB, "evaluate", "--checkpoint", str(checkpoint), "--data", str(photos), "--format",
                    "generic", "--out", str(target), "--min-fov-fraction", "0", "--workers", "1", "--overlays", "0"],
                   args.out / f"{model}.log")
                stamp.write_text(weights[model])
            m = results_io.read(target / "metrics.json")
            full = predicted(args.out / "eval" / model / "photos_full")
            now = predicted(target)
            changed = sum(now[k] != full[k] for k in now if k in full) / max(1, len(now))
            g = m["grading"]
            rows.append({"model": model, "height": height, "n": g["n"], "accuracy": g["accuracy"],
                         "kappa": g["kappa"], "referral_auc": (g.get("referral") or {}).get("auc"),
                         "grades_changed": changed})
    data = results_io.write(args.json, rows, val_photos=len(val))
    print(report(data))


def report(data: dict) -> str:
    lines = [[f"`{r['model']}`", "as given (1424)" if not r["height"] else str(r["height"]), str(r["n"]),
              number(r["accuracy"]), number(r["kappa"]), number(r["referral_auc"]), number(r["grades_changed"])]
             for r in data["rows"]]
    return markdown(["model", "photo height (px)", "photos", "DR accuracy", "kappa", "referral AUC",
                     "grade differs from full size"], lines, "llrrrrr")


if __name__ == "__main__":
    main()
