"""``drcollab compare``: several evaluations (e.g. the four ablations) in one set of paper-shaped tables and one
ROC / PR figure per lesion with a curve per evaluation (the paper's Fig. 5)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from drcollab.errors import ConfigError, DataError
from drcollab.evaluation.evaluate import CURVES_FILE, METRICS_FILE
from drcollab.evaluation.metrics import LesionCurves
from drcollab.evaluation.plots import plot_curves
from drcollab.evaluation.report import render_comparison


def load_evaluation(folder: str | Path) -> dict[str, Any]:
    """``metrics.json`` of an evaluation folder.

    Raises:
        DataError: naming the file when it is missing or not valid JSON.
    """
    path = Path(folder) / METRICS_FILE
    if not path.is_file():
        raise DataError(path, "not found: expected the output folder of drcollab evaluate")
    try:
        metrics = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataError(path, f"not valid JSON ({err})") from err
    if not isinstance(metrics, dict) or "description" not in metrics or "data" not in metrics:
        raise DataError(path, "not a metrics.json of drcollab evaluate (no 'description' / 'data')")
    return metrics


def load_curves(folder: str | Path) -> LesionCurves:
    """The pooled per-lesion histograms an evaluation saved (``curves.npz``, read without pickle)."""
    path = Path(folder) / CURVES_FILE
    if not path.is_file():
        raise DataError(path, "not found: the evaluation scored no segmentation")
    try:
        with np.load(path, allow_pickle=False) as z:
            return LesionCurves.from_state({k: z[k] for k in z.files})
    except (OSError, ValueError) as err:
        raise DataError(path, f"unreadable curve histograms ({err})") from err


def _labels(runs: list[dict[str, Any]], folders: list[Path], labels: list[str] | None) -> list[str]:
    if labels is not None:
        if len(labels) != len(runs):
            raise ConfigError(f"--labels gives {len(labels)} labels for {len(runs)} evaluations")
        return labels
    names = [(m.get("model") or {}).get("name") or f.name for m, f in zip(runs, folders, strict=True)]
    if len(set(names)) < len(names):  # e.g. four runs all named "drcollab": tell them apart by folder
        names = [f"{n} ({f.name})" for n, f in zip(names, folders, strict=True)]
    return names


def compare(eval_dirs: list[str | Path], out_dir: str | Path, labels: list[str] | None = None) -> Path:
    """Write ``compare.md`` (and ``curves.png`` when any evaluation scored segmentation) into ``out_dir``.

    Returns:
        The path of ``compare.md``.
    """
    if not eval_dirs:
        raise ConfigError("compare needs at least one evaluation folder")
    folders = [Path(d) for d in eval_dirs]
    runs = [load_evaluation(f) for f in folders]
    names = _labels(runs, folders, labels)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    curves = {n: load_curves(f) for n, f, m in zip(names, folders, runs, strict=True) if m.get("segmentation")}
    png = None
    if curves:
        plot_curves(curves, out / "curves.png", "ROC and PR curves per lesion")
        png = "curves.png"
    path = out / "compare.md"
    path.write_text(render_comparison(runs, names, png))
    return path
