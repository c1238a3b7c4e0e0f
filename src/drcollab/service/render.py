"""The JSON answer of ``POST /predict``: numbers plus display-size PNGs (base64) for the web page."""

from __future__ import annotations

import base64
import io

import cv2
import numpy as np
from PIL import Image
from pydantic import BaseModel, Field

from drcollab.constants import DME_GRADES, GRADES, LESION_COLOURS, LESIONS
from drcollab.inference.outputs import fit_side, to_uint8
from drcollab.inference.predictor import Prediction
from drcollab.viz import overlay_masks


class PredictResponse(BaseModel):
    """What the model says about one uploaded image."""

    width: int = Field(description="Width of the uploaded image in pixels.")
    height: int = Field(description="Height of the uploaded image in pixels.")
    gradable: bool = Field(description="False: the photo cannot be graded (see `ungradable_reasons`); then the "
                           "grade, DME, referable flag, probabilities and lesion maps are null or empty.")
    ungradable_reasons: list[str] = Field(description="Why it cannot be graded, e.g. 'out of focus: ...'.")
    quality: dict[str, float] = Field(
        description="The gradability measures (sharpness, brightness, ...); empty when refused from the header."
    )
    grade: int | None = Field(description="Most probable DR grade 0-4 (null when the model has no grader).")
    grade_name: str | None = Field(description="Name of that grade.")
    grades: list[str] = Field(description="Names of grades 0-4, in the order of `probabilities`.")
    probabilities: list[float] = Field(description="Per-grade probabilities.")
    dme: int | None = Field(description="Most probable risk of macular edema 0-2 (null without a DME head).")
    dme_name: str | None = Field(description="Name of that risk.")
    dme_grades: list[str] = Field(description="Names of DME risks 0-2, in the order of `dme_probabilities`.")
    dme_probabilities: list[float] = Field(description="Per-risk DME probabilities (empty without a DME head).")
    referable_rule: str = Field(description="Who is referred, e.g. 'grade ≥ 2 or DME ≥ 1' (the model's rule).")
    referable: bool | None = Field(description="P(referable) >= the rule's threshold (0.5 unless set).")
    referable_probability: float | None = Field(
        description="P(referable) = 1 - P(DR below its minimum) x P(DME below its minimum); P(DR >= 2) without DME."
    )
    lesions: list[str] = Field(description="Lesion codes in model order: MA, HE, EX, SE.")
    lesion_area: dict[str, float] = Field(description="Per lesion, the fraction of the field of view with p > 0.5.")
    colours: dict[str, list[int]] = Field(description="RGB colour of each lesion in the overlay.")
    display_width: int = Field(description="Width of the PNGs below (the image scaled to the display size).")
    display_height: int = Field(description="Height of the PNGs below.")
    image_png: str | None = Field(
        description="The uploaded image at display size, base64 PNG (null when refused from its header)."
    )
    overlay_png: str | None = Field(description="The image with every lesion blended in colour, base64 PNG.")
    lesion_png: dict[str, str] = Field(
        description="Per lesion, its probability map at display size as an 8-bit grey base64 PNG (255 = 1.0)."
    )


def png_base64(array: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", compress_level=1)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def render_ungradable(
    size_wh: tuple[int, int], image: np.ndarray | None, reasons: list[str], quality: dict, display_side: int,
    rule: str,
) -> PredictResponse:
    """The answer for an image the gradability check refused: no grade, no maps; the image when decoded."""
    w, h = size_wh
    dh, dw = fit_side((h, w), display_side)
    shown = None
    if image is not None:
        shown = png_base64(cv2.resize(image, (dw, dh), interpolation=cv2.INTER_AREA) if (dh, dw) != (h, w) else image)
    return PredictResponse(
        width=w, height=h, gradable=False, ungradable_reasons=reasons, quality=quality,
        grade=None, grade_name=None, grades=list(GRADES), probabilities=[], dme=None, dme_name=None,
        dme_grades=list(DME_GRADES), dme_probabilities=[], referable_rule=rule, referable=None,
        referable_probability=None, lesions=list(LESIONS), lesion_area={},
        colours={k: list(v) for k, v in LESION_COLOURS.items()}, display_width=dw, display_height=dh,
        image_png=shown, overlay_png=None, lesion_png={},
    )


def render_response(
    image: np.ndarray, pred: Prediction, display_side: int, quality: dict, rule: str
) -> PredictResponse:
    """Scale the image and lesion maps to a longer side of at most ``display_side`` and encode them."""
    h, w = image.shape[:2]
    dh, dw = fit_side((h, w), display_side)
    shown = cv2.resize(image, (dw, dh), interpolation=cv2.INTER_AREA) if (dh, dw) != (h, w) else image
    overlay, layers = None, {}
    if pred.lesion_probs is not None and pred.pre is not None:
        maps = pred.pre.geometry.to_original(pred.lesion_probs, out_hw=(dh, dw))  # (L, dh, dw)
        overlay = png_base64(overlay_masks(shown, maps))
        layers = {lesion: png_base64(to_uint8(maps[k])) for k, lesion in enumerate(LESIONS)}
    return PredictResponse(
        width=w,
        height=h,
        gradable=True,
        ungradable_reasons=[],
        quality=quality,
        grade=pred.grade,
        grade_name=None if pred.grade is None else GRADES[pred.grade],
        grades=list(GRADES),
        probabilities=pred.probabilities,
        dme=pred.dme,
        dme_name=None if pred.dme is None else DME_GRADES[pred.dme],
        dme_grades=list(DME_GRADES),
        dme_probabilities=pred.dme_probabilities,
        referable_rule=rule,
        referable=pred.referable,
        referable_probability=pred.referable_probability,
        lesions=list(LESIONS),
        lesion_area=pred.lesion_area,
        colours={k: list(v) for k, v in LESION_COLOURS.items()},
        display_width=dw,
        display_height=dh,
        image_png=png_base64(shown),
        overlay_png=overlay,
        lesion_png=layers,
    )
