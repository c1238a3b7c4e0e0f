"""What ``drcollab predict`` writes for one image, and the run-level ``predictions.csv`` / ``predictions.json``.

Per image, in ``OUT/images/<id>/`` (``<id>``: the image's stable id, see :func:`drcollab.inference.batch.assign_ids`)::

    lesion_MA.png ... lesion_SE.png   8-bit grey lesion probability (0-255 = 0-1) at the ORIGINAL resolution; with
                                      ``--maps model`` at the model's resolution (the FOV's square, S x S px), and
                                      ``outputs.lesion_maps_geometry`` in result.json says where that square lies
                                      on the photo (``Geometry.from_dict(...).to_original(map)`` puts it back)
    overlay.png                       the image with the lesion probabilities blended in colour, longer side
                                      capped at OVERLAY_MAX_SIDE px (smaller images keep their size)
    result.json                       the record: gradable, grade, probabilities, DME risk and its probabilities,
                                      referable, lesion areas, outputs

Every record has ``gradable`` and ``ungradable_reasons``, and ``quality`` (the gradability measures, see
:mod:`drcollab.inference.gradability`). An ungradable image has only ``result.json``: its grade, DME, probabilities,
referable flag and lesion areas are null or empty and it has no maps, since the model never ran on it. A bundle
without a DME head gives ``dme: null`` and no DME probabilities, and its referable flag follows the DR grade alone.

Every record holds ``sha256``, the hash of the image file's bytes it was made from. Every file is written
atomically (temporary file, then rename) and ``result.json`` last, so an image counts as predicted exactly when
its ``result.json`` exists, names the same model, quality check and file content, and every output it lists
exists. A map or overlay the new ``result.json`` does not list (left by an earlier prediction of another photo
under the same name) is removed.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from drcollab.constants import DME_GRADES, GRADES, LESIONS
from drcollab.data.preprocess import Geometry
from drcollab.files import atomic_write_text, writing
from drcollab.inference.predictor import Prediction
from drcollab.viz import overlay_masks, save_png

IMAGES_DIR = "images"
RESULT_FILE = "result.json"
OVERLAY_FILE = "overlay.png"
OVERLAY_MAX_SIDE = 2048
MAPS = ("full", "model")  # lesion maps on the photo's pixels, or at the model's resolution
PNG_LEVEL = 1  # zlib level of the maps and overlay: ~4x faster to write than 6, files ~20 % larger
CSV_FILE, JSON_FILE = "predictions.csv", "predictions.json"


def strict_json(obj: Any) -> str:
    """JSON that strict parsers accept: a NaN or infinity raises here instead of being written as ``NaN``."""
    return json.dumps(obj, indent=2, allow_nan=False)


def file_sha256(path: Path) -> str | None:
    """Hex sha256 of the file's bytes, or None when it cannot be read (decoding it then says why)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def non_finite(pred: Prediction) -> str | None:
    """Why a prediction must not be reported (NaN or infinite model outputs), or None when it is usable.

    A damaged or diverged model gives NaN probabilities, whose arg-max reads as grade 0 "no DR": such an image
    is a failure with this reason, never a grade.
    """
    bad = []
    if pred.probabilities and not np.isfinite(pred.probabilities).all():
        bad.append("grade probabilities")
    if pred.dme_probabilities and not np.isfinite(pred.dme_probabilities).all():
        bad.append("DME probabilities")
    if pred.lesion_probs is not None and not np.isfinite(pred.lesion_probs).all():
        bad.append("lesion probabilities")
    if not bad:
        return None
    return (f"the model output is not finite (NaN or infinity in its {' and '.join(bad)}): the model is damaged; "
            "use another checkpoint, or train it again")


def to_uint8(probs: np.ndarray) -> np.ndarray:
    """Probabilities in [0, 1] -> uint8 0-255 (rounded)."""
    return np.clip(probs * 255.0 + 0.5, 0, 255).astype(np.uint8)


def fit_side(hw: tuple[int, int], max_side: int) -> tuple[int, int]:
    """``(H, W)`` scaled down so the longer side is at most ``max_side`` (never up)."""
    h, w = hw
    f = min(1.0, max_side / max(h, w))
    return max(1, round(h * f)), max(1, round(w * f))


def overlay_image(image: np.ndarray, probs: np.ndarray, geometry: Geometry, max_side: int) -> np.ndarray:
    """``(H, W, 3)`` image and ``(L, S, S)`` probabilities at the model's resolution -> colour overlay with the
    longer side <= ``max_side`` (the maps drawn straight at the overlay's size)."""
    h, w = fit_side(image.shape[:2], max_side)
    if (h, w) != image.shape[:2]:
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
    return overlay_masks(image, geometry.to_original(probs, out_hw=(h, w)))  # maps (L, h, w)


def write_image_outputs(
    out_dir: Path, item_id: str, source: Path, sha256: str | None, image: np.ndarray, pred: Prediction, model: str,
    quality: dict, maps: str = "full",
) -> dict[str, Any]:
    """Write one image's maps, overlay and ``result.json``; returns the record (see the module docstring).

    Args:
        sha256: The hash of the file's bytes (:func:`file_sha256`).
        quality: ``{"measures": ..., "check": ...}``: the gradability measures and the check's settings.
        maps: ``full`` (lesion maps on the photo's pixels) or ``model`` (at the model's resolution, see the module
            docstring).
    """
    if maps not in MAPS:
        raise ValueError(f"maps {maps!r}: choose one of {', '.join(MAPS)}")
    folder = out_dir / IMAGES_DIR / item_id
    with writing(folder):
        record = _write_image_outputs(out_dir, folder, item_id, source, sha256, image, pred, model, quality, maps)
        _remove_unlisted(out_dir, folder, record)
    return record


def write_ungradable(
    out_dir: Path, item_id: str, source: Path, sha256: str | None, size_wh: tuple[int, int], reasons: list[str],
    model: str, quality: dict,
) -> dict[str, Any]:
    """Write the ``result.json`` of an image the gradability check refused; returns its record."""
    folder = out_dir / IMAGES_DIR / item_id
    record = {
        "id": item_id, "path": str(source), "sha256": sha256, "width": size_wh[0], "height": size_wh[1],
        "gradable": False, "ungradable_reasons": reasons, "quality": quality["measures"],
        "grade": None, "grade_name": None, "probabilities": [], "dme": None, "dme_name": None, "dme_probabilities": [],
        "referable": None, "referable_probability": None, "lesion_area": {}, "outputs": {}, "model": model,
        "quality_check": quality["check"],
    }
    with writing(folder):
        atomic_write_text(folder / RESULT_FILE, strict_json(record))
        _remove_unlisted(out_dir, folder, record)
    return record


def _remove_unlisted(out_dir: Path, folder: Path, record: dict[str, Any]) -> None:
    """Delete the maps and overlay in ``folder`` that ``record`` does not list: an earlier photo's."""
    listed = {(out_dir / rel).name for rel in _listed_outputs(record)}
    for name in [f"lesion_{lesion}.png" for lesion in LESIONS] + [OVERLAY_FILE]:
        if name not in listed:
            (folder / name).unlink(missing_ok=True)


def _write_image_outputs(
    out_dir: Path, folder: Path, item_id: str, source: Path, sha256: str | None, image: np.ndarray,
    pred: Prediction, model: str, quality: dict, maps: str,
) -> dict[str, Any]:
    h, w = image.shape[:2]
    outputs: dict[str, Any] = {}
    if pred.lesion_probs is not None and pred.pre is not None:
        geometry = pred.pre.geometry
        levels = to_uint8(pred.lesion_probs)  # (L, S, S) at the model's resolution
        if maps == "full":
            levels = geometry.to_original(levels)  # (L, H, W), bilinear on the 0-255 levels
        else:
            outputs["lesion_maps_geometry"] = geometry.to_dict()
        outputs["lesion_maps_resolution"] = maps
        outputs["lesion_maps"] = {}
        for k, lesion in enumerate(LESIONS):
            rel = f"{IMAGES_DIR}/{item_id}/lesion_{lesion}.png"
            save_png(levels[k], out_dir / rel, compress_level=PNG_LEVEL)
            outputs["lesion_maps"][lesion] = rel
        outputs["overlay"] = f"{IMAGES_DIR}/{item_id}/{OVERLAY_FILE}"
        save_png(overlay_image(image, pred.lesion_probs, geometry, OVERLAY_MAX_SIDE), out_dir / outputs["overlay"],
                 compress_level=PNG_LEVEL)
    record = {
        "id": item_id,
        "path": str(source),
        "sha256": sha256,
        "width": w,
        "height": h,
        "gradable": True,
        "ungradable_reasons": [],
        "quality": quality["measures"],
        "grade": pred.grade,
        "grade_name": None if pred.grade is None else GRADES[pred.grade],
        "probabilities": pred.probabilities,
        "dme": pred.dme,
        "dme_name": None if pred.dme is None else DME_GRADES[pred.dme],
        "dme_probabilities": pred.dme_probabilities,
        "referable": pred.referable,
        "referable_probability": pred.referable_probability,
        "lesion_area": pred.lesion_area,
        "outputs": outputs,
        "model": model,
        "quality_check": quality["check"],
    }
    atomic_write_text(folder / RESULT_FILE, strict_json(record))
    return record


def _listed_outputs(record: dict[str, Any]) -> list[str]:
    outputs = record.get("outputs", {})
    return list(outputs.get("lesion_maps", {}).values()) + ([outputs["overlay"]] if "overlay" in outputs else [])


def finished_record(
    out_dir: Path, item_id: str, sha256: str | None, model: str, check: dict
) -> dict[str, Any] | None:
    """The record of an image already predicted from the same file content (``sha256``) by ``model`` under the
    same quality ``check`` (its size floor and gradability thresholds) with every output in place, else None.

    A photo replaced under the same name has another hash: its record is not reused.
    """
    if sha256 is None:
        return None
    path = out_dir / IMAGES_DIR / item_id / RESULT_FILE
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(record, dict) or record.get("model") != model or record.get("id") != item_id:
        return None
    if record.get("quality_check") != check or record.get("sha256") != sha256:
        return None
    return record if all((out_dir / rel).is_file() for rel in _listed_outputs(record)) else None


def csv_text(records: list[dict[str, Any]]) -> str:
    """One row per image: id, path, size, gradable and its reasons (``; ``-separated), grade, per-grade
    probabilities, DME risk and its probabilities, referable, lesion areas, overlay, and the sha256 of the file
    it was made from. An ungradable image's grade, DME and referable columns are empty; so are the DME columns of
    a bundle without a DME head."""
    header = ["id", "path", "width", "height", "gradable", "ungradable_reasons", "grade", "grade_name"]
    header += [f"p_grade{g}" for g in range(len(GRADES))] + ["dme", "dme_name"]
    header += [f"p_dme{d}" for d in range(len(DME_GRADES))] + ["referable", "referable_probability"]
    header += [f"area_{lesion}" for lesion in LESIONS] + ["overlay", "sha256"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for r in records:
        probs = r["probabilities"] or [""] * len(GRADES)
        dme_probs = r.get("dme_probabilities") or [""] * len(DME_GRADES)
        areas = [r["lesion_area"].get(lesion, "") for lesion in LESIONS]
        row = [r["id"], r["path"], r["width"], r["height"], r["gradable"], "; ".join(r["ungradable_reasons"])]
        row += [r["grade"], r["grade_name"], *probs, r.get("dme"), r.get("dme_name"), *dme_probs]
        row += [r["referable"], r["referable_probability"], *areas, r["outputs"].get("overlay", ""), r["sha256"]]
        writer.writerow(["" if v is None else v for v in row])
    return buf.getvalue()
