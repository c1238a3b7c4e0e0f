"""Whether a fundus photograph can be graded at all, checked before the model sees it.

A photo that is out of focus, far too dark or burnt out, cropped inside the retina, has no field of view, or
whose field of view is too few pixels across for the model gets no grade, no referable flag and no lesion maps:
it is listed as *ungradable* with its reasons (a screening programme re-takes it). Images too small or of an
implausible shape are refused earlier, from their header (:mod:`drcollab.data.header`); :func:`header_reasons`
words that refusal the same way.

The measures are taken at one working resolution, so a 12 Mpx IDRiD photo and a 1 Mpx one compare: the image
is scaled so that its field-of-view diameter is at most ``work_diameter`` px (never up: a smaller image is
measured at its own size). Inside the FOV (its outer tenth left out: the rim is dark and blurred by optics):

- ``sharpness``: how much fine detail the green channel has for its coarse detail: the standard deviation of its
  finest band (green minus its Gaussian blur of ``detail_sigma`` px) over that of the next band (that blur
  minus the blur of 4 x ``detail_sigma``). A ratio of two bands of the same photo is blind to exposure and to how
  much contrast a retina has; defocus removes the fine band first.
- ``brightness``: mean luminance (0-255); ``dark_fraction`` / ``bright_fraction``: share of pixels with
  luminance below ``dark_level`` / above ``bright_level``.
- ``fov_fraction``: share of the image brighter than the FOV's level (the retina). A photograph always shows
  the round edge of the camera's aperture; an image that is retina from edge to edge is a crop of one.
- ``fov_diameter``: the FOV's diameter in the photo's own pixels. The model resizes the FOV to its working size
  (the bundle's preprocessing size, G's when it has its own); a FOV under ``min_fov_fraction`` of that size
  reaches the model enlarged and blurred, and its grades drift (see ``drcollab.constants.MIN_FOV_FRACTION``),
  so it is too small to grade: :func:`min_fov_diameter`. A bundle trained on small photos may carry its own,
  measured ``min_fov_fraction`` (``bundle.json``); a user's ``--min-fov-fraction`` overrides either.

The default thresholds were measured on the 467 IDRiD training images (all gradable) and on degraded copies
of them: ``benchmarks/bench_gradability.py``, BENCHMARKS.md "Gradability check".
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import cv2
import numpy as np
from pydantic import Field

from drcollab.config import StrictModel
from drcollab.constants import MIN_FOV_FRACTION
from drcollab.data.fov import WORK_SIDE, detect_fov

NO_FOV, TOO_SMALL, BAD_SHAPE = "no field of view", "too small", "implausible shape"
BLURRED, DARK, BRIGHT, CROPPED = "out of focus", "under-exposed", "over-exposed", "cropped"


class GradabilityConfig(StrictModel):
    """The working resolution and the thresholds of the gradability check (defaults: measured on IDRiD)."""

    work_diameter: int = Field(512, ge=32, description="FOV diameter (px) the measures are taken at; never up.")
    detail_sigma: float = Field(2.0, gt=0, description="Gaussian sigma (working px) removed to leave the detail.")
    min_sharpness: float = Field(0.36, ge=0, description="Below: out of focus.")
    min_brightness: float = Field(36.0, ge=0, le=255, description="Mean FOV luminance below: under-exposed.")
    max_brightness: float = Field(160.0, ge=0, le=255, description="Mean FOV luminance above: over-exposed.")
    dark_level: int = Field(10, ge=0, le=255, description="Luminance counted as black.")
    max_dark_fraction: float = Field(0.25, ge=0, le=1, description="Share of black FOV pixels above: under-exposed.")
    bright_level: int = Field(250, ge=0, le=255, description="Luminance counted as burnt out.")
    max_bright_fraction: float = Field(0.02, ge=0, le=1, description="Share of burnt-out FOV pixels above: over.")
    max_fov_fraction: float = Field(0.97, gt=0, le=1, description="Share of the image inside the FOV above: cropped.")
    min_fov_fraction: float | None = Field(
        None, ge=0, le=2,
        description="FOV diameter below this fraction of the model's working size: too small. 0: no minimum. "
        "None: the model's own rule (its bundle's min_fov_fraction, else MIN_FOV_FRACTION).",
    )


class WorkingCopy(NamedTuple):
    """An image at the check's working resolution (see :func:`working_copy`)."""

    image: np.ndarray  # (h, w, 3) uint8
    inner: np.ndarray  # (h, w) bool, the FOV without its outer tenth
    fov_fraction: float  # share of the image inside the FOV
    fov_diameter: float  # the FOV's diameter in the original image's pixels


def header_reasons(problem: str) -> list[str]:
    """The ungradable reason for a header refusal of :func:`drcollab.data.header.shape_problem`."""
    return [f"{TOO_SMALL if 'minimum side' in problem else BAD_SHAPE}: {problem}"]


def min_fov_diameter(fraction: float, model_size: int | None) -> int:
    """The narrowest FOV (px across, in the photo) graded by a model that resizes the FOV to ``model_size`` px:
    ``fraction`` of it (:attr:`GradabilityConfig.min_fov_fraction`); 0 (no minimum) when ``model_size`` is None."""
    return 0 if model_size is None else math.ceil(fraction * model_size)


def working_copy(image: np.ndarray, cfg: GradabilityConfig) -> WorkingCopy:
    """``(H, W, 3)`` uint8 -> the image at the working resolution ``(h, w, 3)``, its inner-FOV mask ``(h, w)``,
    the share of the image inside the FOV and the FOV's diameter in ``image``'s pixels.

    Raises:
        ValueError: no field of view found (from :func:`drcollab.data.fov.detect_fov`).
    """
    h, w = image.shape[:2]
    f = min(1.0, WORK_SIDE / max(h, w))
    if f < 1.0:  # detect_fov would shrink it anyway: do it once here
        image = cv2.resize(image, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    fov = detect_fov(image)
    g = min(1.0, cfg.work_diameter / (2 * fov.radius))
    if g < 1.0:
        h2, w2 = image.shape[:2]
        image = cv2.resize(image, (max(1, round(w2 * g)), max(1, round(h2 * g))), interpolation=cv2.INTER_AREA)
    hh, ww = image.shape[:2]
    cx, cy, r = fov.centre[0] * g, fov.centre[1] * g, fov.radius * g
    yy, xx = np.ogrid[:hh, :ww]
    inner = (xx - cx) ** 2 + (yy - cy) ** 2 <= (0.9 * r) ** 2  # (h, w)
    return WorkingCopy(image, inner, float((image[..., 0] > fov.level).mean()), 2 * fov.radius / f)


def measure(image: np.ndarray, cfg: GradabilityConfig | None = None) -> dict[str, float]:
    """The measures of the module docstring for a ``(H, W, 3)`` uint8 RGB image.

    Raises:
        ValueError: no field of view found.
    """
    cfg = cfg or GradabilityConfig()
    small, inner, fov_fraction, fov_diameter = working_copy(image, cfg)
    if inner.sum() < 16:
        raise ValueError(f"the field of view found is {int(inner.sum())} px at the working resolution: too small")
    green = small[..., 1].astype(np.float32)
    fine = cv2.GaussianBlur(green, (0, 0), cfg.detail_sigma)
    coarse = cv2.GaussianBlur(green, (0, 0), 4 * cfg.detail_sigma)
    luma = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)[inner].astype(np.float32)  # (N,)
    return {
        "sharpness": float((green - fine)[inner].std() / max(float((fine - coarse)[inner].std()), 1e-3)),
        "brightness": float(luma.mean()),
        "dark_fraction": float((luma < cfg.dark_level).mean()),
        "bright_fraction": float((luma > cfg.bright_level).mean()),
        "fov_fraction": fov_fraction,
        "fov_diameter": fov_diameter,
    }


def fov_size_reason(diameter: float, min_diameter: int) -> str | None:
    """The ungradable reason of a FOV ``diameter`` px across under a ``min_diameter`` minimum, or None."""
    if diameter >= min_diameter:
        return None
    return (f"{TOO_SMALL}: field of view {math.floor(diameter)} px across, below the {min_diameter} px this model "
            "needs: use the original photo or one taken at a higher resolution, not a shrunk copy")


def reasons_from(m: dict[str, float], cfg: GradabilityConfig, min_diameter: int = 0) -> list[str]:
    """The ungradable reasons that measures ``m`` give under ``cfg`` and a minimum FOV diameter (empty: gradable)."""
    size = fov_size_reason(m["fov_diameter"], min_diameter) if min_diameter else None
    reasons = [] if size is None else [size]
    if m["sharpness"] < cfg.min_sharpness:
        reasons.append(f"{BLURRED}: sharpness {m['sharpness']:.4f} < {cfg.min_sharpness:g}")
    if m["brightness"] < cfg.min_brightness or m["dark_fraction"] > cfg.max_dark_fraction:
        reasons.append(f"{DARK}: mean brightness {m['brightness']:.0f} (minimum {cfg.min_brightness:g}), "
                       f"{m['dark_fraction']:.0%} of the field of view black (maximum {cfg.max_dark_fraction:.0%})")
    if m["brightness"] > cfg.max_brightness or m["bright_fraction"] > cfg.max_bright_fraction:
        reasons.append(f"{BRIGHT}: mean brightness {m['brightness']:.0f} (maximum {cfg.max_brightness:g}), "
                       f"{m['bright_fraction']:.0%} of the field of view burnt out "
                       f"(maximum {cfg.max_bright_fraction:.0%})")
    if m["fov_fraction"] > cfg.max_fov_fraction:
        reasons.append(f"{CROPPED}: the field of view fills {m['fov_fraction']:.0%} of the image, with no "
                       f"aperture edge (maximum {cfg.max_fov_fraction:.0%}): a crop inside the retina")
    return reasons


def fov_fraction_for(fraction: float | None, model_fraction: float) -> float:
    """The minimum FOV fraction in force: the user's ``fraction`` when set, else the model's own (a bundle's
    ``min_fov_fraction``)."""
    return model_fraction if fraction is None else fraction


def check_gradable(
    image: np.ndarray, cfg: GradabilityConfig | None = None, model_size: int | None = None,
    model_fraction: float = MIN_FOV_FRACTION,
) -> tuple[bool, list[str], dict[str, Any]]:
    """Whether ``(H, W, 3)`` uint8 RGB ``image`` can be graded: ``(gradable, reasons, measures)``.

    Args:
        model_size: The side the model resizes the FOV to (``Predictor.input_preprocess.size``), which sets the
            minimum FOV diameter (:func:`min_fov_diameter`); None: no minimum.
        model_fraction: The model's own minimum FOV fraction (``Bundle.min_fov_fraction``), used when ``cfg``
            sets none (:func:`fov_fraction_for`).
    """
    cfg = cfg or GradabilityConfig()
    try:
        m = measure(image, cfg)
    except ValueError as err:
        return False, [f"{NO_FOV}: {err}"], {}
    reasons = reasons_from(m, cfg, min_fov_diameter(fov_fraction_for(cfg.min_fov_fraction, model_fraction), model_size))
    return not reasons, reasons, {k: round(v, 6) for k, v in m.items()}
