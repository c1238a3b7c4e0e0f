"""Figures of an evaluation: per-lesion ROC and PR curves (the paper's Fig. 5), the confusion matrix, the referral
ROC curve with the bundle's operating point, and qualitative lesion overlays (Fig. 4).

Figures are built on matplotlib's object API with the Agg canvas (no pyplot, no global backend switch), at
100 dpi, so every PNG stays well under 500 KB.
"""

from __future__ import annotations

import textwrap
import warnings
from collections.abc import Sequence
from pathlib import Path

import cv2
import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from drcollab.constants import LESION_NAMES, LESIONS
from drcollab.evaluation.metrics import LesionCurves, UndefinedMetricWarning
from drcollab.evaluation.operating_point import OperatingPoint, RocPoints

# Fig. 4's colours: ground truth green, detections blue, misses yellow, false alarms red.
TRUTH, HIT, MISS, FALSE_ALARM = (40, 200, 70), (40, 120, 255), (255, 215, 0), (235, 30, 30)
MAX_POINTS = 2000  # curve points drawn per line


def _save(fig: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=100)
    return path


def _thin(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At most MAX_POINTS points of a curve, always keeping both ends."""
    if len(x) <= MAX_POINTS:
        return x, y
    idx = np.unique(np.linspace(0, len(x) - 1, MAX_POINTS).round().astype(int))
    return x[idx], y[idx]


def plot_curves(curves: dict[str, LesionCurves], path: Path, title: str = "") -> Path:
    """ROC (top row) and PR (bottom row) curves per lesion, one line per entry of ``curves`` (label -> curves)."""
    fig = Figure(figsize=(14, 7.4), layout="constrained")
    axes = fig.subplots(2, len(LESIONS))
    colours = matplotlib.colormaps["tab10"]
    for j, lesion in enumerate(LESIONS):
        roc_ax, pr_ax = axes[0, j], axes[1, j]
        roc_ax.plot([0, 1], [0, 1], color="0.75", lw=0.8, ls="--")
        drawn = False
        for k, (label, lesion_curves) in enumerate(curves.items()):
            c = lesion_curves.curves[lesion]
            if c.n_pos == 0 or c.n_neg == 0:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UndefinedMetricWarning)
                auc, ap = c.roc_auc(), c.average_precision()
            prefix = f"{label}: " if len(curves) > 1 else ""
            fpr, tpr, _ = c.roc_curve()
            roc_ax.plot(*_thin(fpr, tpr), color=colours(k), lw=1.4, label=f"{prefix}AUC {auc:.4f}")
            precision, recall, _ = c.pr_curve()
            pr_ax.plot(*_thin(recall, precision), color=colours(k), lw=1.4, label=f"{prefix}AUC {ap:.4f}")
            drawn = True
        roc_ax.set(title=f"{lesion} ({LESION_NAMES[lesion]})", xlabel="false positive rate", xlim=(0, 1),
                   ylim=(0, 1.01))
        pr_ax.set(xlabel="recall", xlim=(0, 1), ylim=(0, 1.01))
        if j == 0:
            roc_ax.set_ylabel("ROC: true positive rate")
            pr_ax.set_ylabel("PR: precision")
        for ax in (roc_ax, pr_ax):
            ax.grid(alpha=0.3)
            if drawn:
                ax.legend(loc="lower right" if ax is roc_ax else "upper right", fontsize=8)
            else:
                ax.text(0.5, 0.5, "no positive pixel", ha="center", va="center", transform=ax.transAxes, color="0.4")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_confusion(matrix: np.ndarray, path: Path, rows: Sequence[str], cols: Sequence[str], title: str = "",
                   ylabel: str = "true grade") -> Path:
    """Counts in each cell, shaded by the share of its row (so rare grades are as readable as common ones)."""
    matrix = np.asarray(matrix)
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig = Figure(figsize=(1.1 * len(cols) + 2.2, 0.9 * len(rows) + 1.8), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (i, j), n in np.ndenumerate(matrix):
        ax.text(j, i, str(n), ha="center", va="center", color="white" if share[i, j] > 0.55 else "black")
    ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(len(rows)), rows)
    ax.set(xlabel="predicted grade", ylabel=ylabel, title=title)
    fig.colorbar(image, ax=ax, label="share of the row", shrink=0.8)
    return _save(fig, path)


def plot_referral_roc(roc: RocPoints, point: OperatingPoint, auc: float | None, path: Path, title: str = "",
                      rule: str = "referable") -> Path:
    """The ROC curve of P(referable) with the operating point (the bundle's threshold) marked, its 95 % Wilson
    intervals drawn as error bars (sensitivity up and down, 1 - specificity across)."""
    fig = Figure(figsize=(5.6, 5.4), layout="constrained")
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="0.75", lw=0.8, ls="--")
    label = f"{rule} (AUC {auc:.3f})" if auc is not None else rule
    ax.plot(roc.fpr, roc.tpr, color="tab:blue", lw=1.6, label=label)
    sens, spec = point.sensitivity, point.specificity
    x, y = 1 - spec.value, sens.value
    ax.errorbar([x], [y], xerr=[[x - (1 - spec.high)], [(1 - spec.low) - x]], yerr=[[y - sens.low], [sens.high - y]],
                fmt="o", color="tab:red", ms=7, capsize=4,
                label=f"threshold {point.threshold:.4f}: sensitivity {sens.value:.3f}, specificity {spec.value:.3f}")
    ax.set(xlabel="1 - specificity (other eyes referred)", ylabel="sensitivity (referable eyes found)",
           xlim=(-0.01, 1.01), ylim=(-0.01, 1.01))
    ax.set_title(textwrap.fill(title, 60), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8, title="error bars: 95% Wilson intervals", title_fontsize=8)
    return _save(fig, path)


def _shrink(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W) bool -> (h, w) bool, set where any covered pixel was set (a 1-px microaneurysm stays visible)."""
    return cv2.resize(mask.astype(np.float32), size[::-1], interpolation=cv2.INTER_AREA) > 0


def _paint(base: np.ndarray, layers: Sequence[tuple[np.ndarray, tuple[int, int, int]]],
           opacity: float = 0.8) -> np.ndarray:
    """Colour the masked pixels of a ``(h, w, 3)`` uint8 image, later layers on top; the image shows through."""
    out = base.astype(np.float32)
    for mask, colour in layers:
        out[mask] = (1 - opacity) * out[mask] + opacity * np.asarray(colour, np.float32)
    return out.round().astype(np.uint8)


def plot_overlay(image: np.ndarray, masks: np.ndarray, probs: np.ndarray, path: Path,
                 box: tuple[int, int, int, int] | None = None, threshold: float = 0.5, side: int = 300,
                 title: str = "") -> Path:
    """Ground truth (top row) beside the thresholded prediction (bottom row) for each lesion.

    Args:
        image: ``(H, W, 3)`` uint8 original image.
        masks: ``(L, H, W)`` bool ground truth at the original resolution.
        probs: ``(L, H, W)`` float lesion probabilities at the original resolution.
        box: ``(x0, y0, x1, y1)`` region to show (e.g. the FOV crop box); default the whole image.
        threshold: A pixel is predicted as lesion when its probability is >= this.
        side: Longer side of each panel in pixels.
    """
    h, w = image.shape[:2]
    x0, y0, x1, y1 = box or (0, 0, w, h)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    f = side / max(x1 - x0, y1 - y0)
    size = (max(1, round((y1 - y0) * f)), max(1, round((x1 - x0) * f)))  # (h, w)
    grey = cv2.resize(image[y0:y1, x0:x1, 1], size[::-1], interpolation=cv2.INTER_AREA)  # green channel
    base = np.repeat((40 + 0.45 * grey.astype(np.float32)).astype(np.uint8)[..., None], 3, axis=2)  # dimmed
    panel_h, panel_w = size[0] / 100, size[1] / 100  # inches at 100 dpi
    fig = Figure(figsize=(4 * panel_w * 1.04 + 0.2, 2 * panel_h * 1.12 + 0.8), layout="constrained")
    axes = fig.subplots(2, len(LESIONS))
    for j, lesion in enumerate(LESIONS):
        truth, pred = masks[j, y0:y1, x0:x1], probs[j, y0:y1, x0:x1] >= threshold
        tp, fn, fp = truth & pred, truth & ~pred, ~truth & pred
        axes[0, j].imshow(_paint(base, [(_shrink(truth, size), TRUTH)]))
        axes[0, j].set_title(f"{lesion} ground truth ({int(truth.sum()):,} px)", fontsize=9)
        painted = [(_shrink(m, size), c) for m, c in ((fp, FALSE_ALARM), (tp, HIT), (fn, MISS))]
        axes[1, j].imshow(_paint(base, painted))
        axes[1, j].set_title(f"TP {int(tp.sum()):,}  FN {int(fn.sum()):,}  FP {int(fp.sum()):,}", fontsize=9)
        for ax in axes[:, j]:
            ax.set_axis_off()
    legend = [Patch(color=np.array(c) / 255, label=t) for c, t in (
        (TRUTH, "ground truth"), (HIT, "detected (TP)"), (MISS, "missed (FN)"), (FALSE_ALARM, "false alarm (FP)"))]
    fig.legend(handles=legend, loc="outside lower center", ncols=4, fontsize=9, frameon=False)
    fig.suptitle(f"{title}  (prediction = probability >= {threshold:g})".strip(), fontsize=10)
    return _save(fig, path)
