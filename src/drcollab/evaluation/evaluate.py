"""``drcollab evaluate``: score a model bundle on a dataset at the original resolution and write a report.

Per image: decode, preprocess as the bundle was trained, predict, map the lesion maps back to the original
pixels with ``Geometry.to_original`` (pixels outside the crop box score 0) and add them to pooled per-lesion
histograms against the full-resolution masks, so one image's full-size maps are in memory at a time. The out
folder gets ``metrics.json``, ``report.md``, ``predictions.csv``, ``curves.npz`` (the pooled histograms, for
``drcollab compare``), ``curves.png``, ``confusion.png`` and ``overlays/*.png``. See ``docs/evaluation.md``.

An image whose field of view is too few pixels across for the model (under ``min_fov_fraction`` of the size the
model resizes it to, as ``predict`` and ``serve`` refuse it: :mod:`drcollab.inference.gradability`) is not
scored; ``metrics.json`` lists it under ``ungradable`` with the reason.
"""

from __future__ import annotations

import csv
import json
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from drcollab.config import OutsideFov, Tta
from drcollab.constants import GRADES, LESIONS, NUM_DME, NUM_GRADES, VERSION
from drcollab.data.cache import PreprocessCache
from drcollab.data.io import load_masks, read_image
from drcollab.data.preprocess import Preprocessed
from drcollab.data.records import Record
from drcollab.errors import DataError
from drcollab.evaluation.metrics import DEFAULT_BINS
from drcollab.evaluation.operating_point import measure, roc_points
from drcollab.evaluation.plots import plot_confusion, plot_curves, plot_overlay, plot_referral_roc
from drcollab.evaluation.report import render_report
from drcollab.evaluation.scoring import Scores
from drcollab.evaluation.selection import EvalSet
from drcollab.inference.autotune import Choice, make_predictor
from drcollab.inference.engine import load_engine
from drcollab.inference.gradability import fov_fraction_for, fov_size_reason, min_fov_diameter
from drcollab.inference.predictor import Prediction, Predictor
from drcollab.inference.referable import rule_text

THRESHOLD = 0.5  # lesion probability counted as a detection in the overlays
CURVES_FILE, METRICS_FILE, REFERRAL_ROC = "curves.npz", "metrics.json", "referral_roc.png"
GRADE_LABELS = [f"{g} {name}" for g, name in enumerate(GRADES)]


def _prefetch(load: Callable[[Record], Any], records: list[Record], workers: int) -> Iterator[Any]:
    """``load(r)`` for each record in order, computed up to ``2 * workers`` records ahead in threads."""
    if workers <= 0:
        yield from map(load, records)
        return
    with ThreadPoolExecutor(workers) as pool:
        pending: deque = deque()
        for r in records:
            pending.append(pool.submit(load, r))
            if len(pending) > 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _loader(predictor: Predictor, cache: PreprocessCache | None) -> Callable[[Record], tuple[Record, Preprocessed]]:
    def load(record: Record) -> tuple[Record, Preprocessed]:
        if cache is not None:
            return record, cache.get(record)
        image = read_image(record.image_path)
        try:
            return record, predictor.preprocess(image)
        except ValueError as err:
            raise DataError(record.image_path, f"cannot preprocess: {err}") from err
    return load


def _score_lesions(record: Record, pre: Preprocessed, pred: Prediction, scores: Scores, overlay: Path | None) -> None:
    masks = load_masks(record, pre.geometry.original_hw)  # (L, H, W) bool; DataError names a bad mask file
    maps = pre.geometry.to_original(pred.lesion_probs)  # (L, H, W), 0 outside the crop box
    np.clip(maps, 0.0, 1.0, out=maps)  # bilinear rounding may step a hair past 1
    scores.add_lesions(maps, masks)
    if overlay is not None:
        plot_overlay(read_image(record.image_path), masks, maps, overlay, pre.geometry.box, THRESHOLD,
                     title=record.name)


CSV_HEADER = ["name", "tasks", "grade", "grade_scale", "predicted", *(f"p{g}" for g in range(NUM_GRADES)), "dme",
              "predicted_dme", *(f"p_dme{d}" for d in range(NUM_DME)), "referable_probability"]


def _row(record: Record, pred: Prediction, tasks: str) -> list[Any]:
    probs = pred.probabilities or [""] * NUM_GRADES
    dme_probs = pred.dme_probabilities or [""] * NUM_DME
    row = [record.name, tasks, record.grade, record.grade_scale, pred.grade, *probs, record.dme, pred.dme, *dme_probs,
           pred.referable_probability]
    return ["" if v is None else v for v in row]


def _wide_enough(
    batch: list[tuple[Record, Preprocessed]], min_diameter: int, ungradable: list[dict[str, str]]
) -> list[tuple[Record, Preprocessed]]:
    """The images of ``batch`` whose FOV is at least ``min_diameter`` px across; the others go to ``ungradable``."""
    kept = []
    for record, pre in batch:
        reason = fov_size_reason(2 * pre.geometry.radius, min_diameter)
        if reason is None:
            kept.append((record, pre))
        else:
            ungradable.append({"name": record.name, "reason": reason})
    return kept


def _plan(eval_set: EvalSet, predictor: Predictor) -> tuple[EvalSet, list[str]]:
    """Drop the tasks the bundle cannot do (no generator: no segmentation; no grader: no grading)."""
    skipped = []
    seg, grade = eval_set.segmentation, eval_set.grading
    if seg and predictor.bundle.generator is None:
        skipped.append(f"segmentation of {len(seg)} images: the bundle has no generator")
        seg = []
    if grade and predictor.bundle.grader is None:
        skipped.append(f"grading of {len(grade)} images: the bundle has no grader")
        grade = []
    return replace(eval_set, segmentation=seg, grading=grade), skipped


@dataclass(frozen=True)
class Evaluation:
    """What :func:`run_evaluation` found: ``metrics.json``'s content, the scores it was computed from, and the
    setting the model ran in (None: the ONNX engine)."""

    metrics: dict[str, Any]
    scores: Scores
    choice: Choice | None = None


def evaluate(bundle_path: str | Path, records: EvalSet | list[Record], out_dir: str | Path, **options: Any
             ) -> dict[str, Any]:
    """:func:`run_evaluation`, returning ``metrics.json``'s content (``options``: its keyword arguments)."""
    return run_evaluation(bundle_path, records, out_dir, **options).metrics


def run_evaluation(
    bundle_path: str | Path,
    records: EvalSet | list[Record],
    out_dir: str | Path,
    *,
    batch_size: int = 4,
    device: str = "cpu",
    overlays: int = 3,
    tile: int | None = None,
    tta: Tta | None = None,
    workers: int = 0,
    cache_dir: str | Path | None = None,
    bins: int = DEFAULT_BINS,
    progress: bool = True,
    outside_fov: OutsideFov = "zero",
    min_fov_fraction: float | None = None,
    setting: str = "auto",
) -> Evaluation:
    """Evaluate a model bundle and write the report files into ``out_dir``; returns ``metrics.json``'s content and
    the per-image scores behind it.

    Args:
        bundle_path: Run folder, bundle folder or ``bundle.json``.
        records: What to score (see :mod:`drcollab.evaluation.selection`); a plain list scores segmentation on
            the records with masks and grading on those with a grade.
        out_dir: Output folder (created).
        batch_size: Images per forward pass.
        device: torch device.
        overlays: Number of segmentation images to draw Fig. 4-style overlays for.
        tile: Generator tile side (None: the bundle's, 0: whole image), see ``Predictor``.
        tta: Test-time flips (None: the bundle's, else none), see ``Predictor``.
        workers: Threads decoding and preprocessing ahead of the model (0: in the main thread).
        cache_dir: Preprocessing cache folder (shared with training) to skip decoding on later evaluations.
        bins: Score bins of the pooled pixel histograms.
        progress: Show a progress bar.
        outside_fov: Lesion maps outside the field of view: ``zero`` (the default) or ``keep`` G's raw outputs (how
            drcollab scored before, and the paper's whole-image pixel AUCs), see ``Predictor``.
        min_fov_fraction: Images whose FOV is narrower than this fraction of the model's working size are not
            scored (see the module docstring); 0 scores every image; None: the bundle's own rule.

    Raises:
        DataError: a missing or invalid bundle, a bad image / mask (naming the file), or no image wide enough.
    """
    if not Path(bundle_path).exists():
        raise DataError(bundle_path, "checkpoint not found (expected a run folder, its model/ folder or bundle.json)")
    eval_set = records if isinstance(records, EvalSet) else EvalSet.from_records(list(records))
    engine = load_engine(bundle_path, device=device, setting=setting)  # the setting predict and serve run in
    predictor = make_predictor(engine.predictor.bundle, device, engine.choice.setting, tile=tile, tta=tta,
                               outside_fov=outside_fov)
    eval_set, skipped = _plan(eval_set, predictor)
    todo = eval_set.records()
    if not todo:
        raise DataError(eval_set.info.get("root") or out_dir, "nothing to evaluate: no image with lesion masks or "
                        "grade that the model can score" + (f" ({'; '.join(skipped)})" if skipped else ""))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seg_keys = {(r.name, r.image_path) for r in eval_set.segmentation}
    grade_keys = {(r.name, r.image_path) for r in eval_set.grading}
    cache = None if cache_dir is None else PreprocessCache(cache_dir, predictor.input_preprocess)
    scores, drawn = Scores(bins, predictor.referable), []
    fraction = fov_fraction_for(min_fov_fraction, predictor.bundle.min_fov_fraction)
    min_diameter = min_fov_diameter(fraction, predictor.input_preprocess.size)
    ungradable: list[dict[str, str]] = []
    with (out / "predictions.csv").open("w", newline="") as f, \
            tqdm(total=len(todo), desc="evaluate", unit="img", disable=not progress) as bar:
        writer = csv.writer(f)
        writer.writerow(CSV_HEADER)
        for loaded in _chunks(_prefetch(_loader(predictor, cache), todo, workers), batch_size):
            batch = _wide_enough(loaded, min_diameter, ungradable)
            preds = predictor.predict_preprocessed([pre for _, pre in batch]) if batch else []
            for (record, pre), pred in zip(batch, preds, strict=True):
                key, tasks = (record.name, record.image_path), []
                if key in seg_keys:
                    overlay = out / "overlays" / f"{record.name}.png" if len(drawn) < overlays else None
                    _score_lesions(record, pre, pred, scores, overlay)
                    drawn += [] if overlay is None else [overlay.relative_to(out).as_posix()]
                    tasks.append("segmentation")
                if key in grade_keys:
                    scores.add_grade(record, pred.probabilities, pred.dme_probabilities, pred.referable_probability)
                    tasks.append("grading")
                writer.writerow(_row(record, pred, "+".join(tasks)))
            bar.update(len(loaded))
    if ungradable:
        skipped.append(_too_small_note(ungradable, min_diameter))
        if len(ungradable) == len(todo):
            (out / "predictions.csv").unlink()
            raise DataError(eval_set.info.get("root") or out_dir, f"nothing to evaluate: {skipped[-1]}; evaluate the "
                            "photos at their original resolution, or pass --min-fov-fraction 0 to score them anyway")
    metrics = _metrics(predictor, eval_set, scores, skipped, len(todo), batch_size, bins)
    metrics["settings"]["min_fov_diameter"] = min_diameter
    metrics["ungradable"] = ungradable
    metrics["files"] = _figures(metrics, scores, out, drawn)
    (out / METRICS_FILE).write_text(json.dumps(metrics, indent=2, allow_nan=False) + "\n")
    (out / "report.md").write_text(render_report(metrics))
    return Evaluation(metrics, scores, engine.choice)


def _too_small_note(ungradable: list[dict[str, str]], min_diameter: int) -> str:
    names = [u["name"] for u in ungradable]
    listed = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    images = "1 image" if len(names) == 1 else f"{len(names)} images"
    return f"{images} whose field of view is narrower than the {min_diameter} px this model needs ({listed})"


def _metrics(predictor: Predictor, eval_set: EvalSet, scores: Scores, skipped: list[str], n_images: int,
             batch_size: int, bins: int) -> dict[str, Any]:
    info = predictor.bundle.info
    return {
        "drcollab_version": VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "checkpoint": str(predictor.bundle.root),
        "model": {"name": info.get("name"), "parts": sorted(info.get("parts", {})),
                  "trained_stages": info.get("trained_stages")},
        "data": {**eval_set.info, "dataset": eval_set.dataset},
        "description": eval_set.description,
        "settings": {"device": str(predictor.device), "precision": "bf16" if predictor.amp else "fp32",
                     "channels_last": predictor.channels_last, "batch_size": batch_size, "tile": predictor.tile or None,
                     "tile_overlap": predictor.overlap if predictor.tile else None, "tta": predictor.tta,
                     "outside_fov": predictor.outside_fov, "bins": bins, "threshold": THRESHOLD},
        "counts": {"images": n_images, "segmentation": scores.n_segmentation, "grading": len(scores.true),
                   "lesion_images": dict(zip(LESIONS, scores.lesion_images.tolist(), strict=True))},
        "skipped": skipped,
        **scores.summary(),
    }


def _figures(metrics: dict[str, Any], scores: Scores, out: Path, overlays: list[str]) -> dict[str, Any]:
    files: dict[str, Any] = {"overlays": overlays}
    name = metrics["model"]["name"]
    if metrics["segmentation"] is not None:
        np.savez_compressed(out / CURVES_FILE, **scores.curves.state_dict())
        files["curves_npz"] = CURVES_FILE
        plot_curves({name: scores.curves}, out / "curves.png", f"{name}: {metrics['description']}")
        files["curves"] = "curves.png"
    if metrics["grading"] is not None:
        plot_confusion(np.asarray(metrics["grading"]["confusion"]), out / "confusion.png", GRADE_LABELS,
                       GRADE_LABELS, f"{name}: {metrics['description']}")
        files["confusion"] = "confusion.png"
    elif metrics["messidor"] is not None:
        plot_confusion(np.asarray(metrics["messidor"]["confusion"]), out / "confusion.png",
                       [f"Messidor {g}" for g in range(4)], GRADE_LABELS, f"{name}: {metrics['description']}",
                       ylabel="Messidor grade")
        files["confusion"] = "confusion.png"
    referable = metrics["referable"]
    if referable is not None and referable["n_pos"] and referable["n_neg"]:
        probs, truth = scores.referable_inputs()
        rule = rule_text(scores.referable, referable["uses_dme"])
        plot_referral_roc(roc_points(probs, truth), measure(probs, truth, referable["threshold"]), referable["auc"],
                          out / REFERRAL_ROC, f"{name}: {metrics['description']}", f"P({rule})")
        files["referral_roc"] = REFERRAL_ROC
    return files
