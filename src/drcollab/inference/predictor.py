"""Prediction on new fundus images: DR grade, DME risk, their probabilities, referable flag, lesion maps and areas."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, get_args

import numpy as np
import torch
import torch.nn.functional as F

from drcollab.config import OutsideFov, PreprocessConfig, ReferableConfig, Tta
from drcollab.constants import LESIONS
from drcollab.data.preprocess import Preprocessed, preprocess
from drcollab.data.transforms import image_to_tensor
from drcollab.inference.bundle import Bundle, load_bundle
from drcollab.inference.referable import referable_probability
from drcollab.models.mask_path import grader_inputs

# The flips each test-time augmentation averages over, as torch.flip dims of (B, C, H, W): () is the image itself.
TTA_FLIPS: dict[str, tuple[tuple[int, ...], ...]] = {
    "none": ((),),
    "hflip": ((), (3,)),
    "flips": ((), (3,), (2,), (2, 3)),
}


class Probabilities(NamedTuple):
    """:meth:`Predictor.forward`'s outputs; a part the bundle lacks is None."""

    masks: torch.Tensor | None  # (B, L, S, S) lesion probabilities (no generator: None)
    grades: torch.Tensor | None  # (B, G) DR grade probabilities (no grader: None)
    dme: torch.Tensor | None  # (B, 3) DME risk probabilities (no DME head: None)


@dataclass
class Prediction:
    """What the model says about one image.

    Attributes:
        grade: Most probable DR grade (None when the bundle has no grader).
        probabilities: Per-grade probabilities (empty without a grader).
        referable: P(referable) >= the referable threshold (see :mod:`drcollab.inference.referable`).
        referable_probability: P(DR >= dr_min or DME >= dme_min); P(DR >= dr_min) without a DME head.
        lesion_probs: ``(L, S, S)`` float32 lesion probabilities at the preprocessed resolution
            (map them to the original pixels with ``pre.geometry.to_original``), or None.
        lesion_area: Per-lesion area as a fraction of the field of view (probability > 0.5).
        pre: The preprocessed input (image, FOV, geometry).
        dme: Most probable risk of macular edema 0-2 (None without a DME head).
        dme_probabilities: Per-risk probabilities (empty without a DME head).
    """

    grade: int | None
    probabilities: list[float]
    referable: bool | None
    referable_probability: float | None
    lesion_probs: np.ndarray | None
    lesion_area: dict[str, float] = field(default_factory=dict)
    pre: Preprocessed | None = None
    dme: int | None = None
    dme_probabilities: list[float] = field(default_factory=list)

    def summary(self) -> dict:
        """JSON-ready fields (no arrays)."""
        return {
            "grade": self.grade,
            "probabilities": self.probabilities,
            "dme": self.dme,
            "dme_probabilities": self.dme_probabilities,
            "referable": self.referable,
            "referable_probability": self.referable_probability,
            "lesion_area": self.lesion_area,
        }


class Predictor:
    """Run a trained bundle on RGB images of any size.

    Args:
        bundle: A loaded :class:`Bundle` or a path accepted by :func:`load_bundle`.
        device: torch device.
        amp: bf16 autocast.
        channels_last: channels_last memory format.
        referable: Who is referred (DR and DME minimums, flag threshold); None takes the bundle's ``"referable"``.
        tile: Run G on overlapping ``tile``-pixel windows (see :mod:`drcollab.models.tiling`); None takes the
            bundle's ``"tile"`` entry (absent: whole image), 0 forces the whole image.
        overlap: Minimum overlap of the windows; None takes the bundle's ``"tile_overlap"``, else ``tile // 4``.
        tta: Test-time flips :meth:`forward` averages over: ``none``, ``hflip`` (the image and its mirror image) or
            ``flips`` (also the vertical and the double flip); None takes the bundle's ``"tta"``, else ``none``.
        outside_fov: What the lesion maps say outside the image's field of view: ``zero`` (the default: G never
            learns there, every mask loss leaves those pixels out, so its outputs there mean nothing) or ``keep``
            (G's raw outputs, as scored before this option and by the paper's whole-image AUCs). The grader's inputs
            (pooled masks, statistics) are G's raw masks either way: the one mask path it was trained on.
    """

    def __init__(
        self,
        bundle: Bundle | str | Path,
        device: str | torch.device = "cpu",
        amp: bool = False,
        channels_last: bool = False,
        referable: ReferableConfig | None = None,
        tile: int | None = None,
        overlap: int | None = None,
        tta: Tta | None = None,
        outside_fov: OutsideFov = "zero",
    ) -> None:
        if outside_fov not in get_args(OutsideFov):
            raise ValueError(f"outside_fov {outside_fov!r}: choose one of {', '.join(get_args(OutsideFov))}")
        self.outside_fov = outside_fov
        self.device = torch.device(device)
        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle, self.device)
        self.amp, self.channels_last = amp, channels_last
        self.referable = referable or self.bundle.referable
        self.tile = int(self.bundle.info.get("tile") or 0) if tile is None else tile
        default_overlap = self.bundle.info.get("tile_overlap", self.tile // 4)
        self.overlap = int(default_overlap) if overlap is None else overlap
        if self.tile < 0 or (self.tile and not 0 <= self.overlap < self.tile):
            raise ValueError(f"need tile >= 0 and 0 <= overlap < tile, got tile={self.tile}, overlap={self.overlap}")
        self.tta: Tta = tta or self.bundle.info.get("tta", "none")
        if self.tta not in TTA_FLIPS:
            raise ValueError(f"tta {self.tta!r}: choose one of {', '.join(get_args(Tta))}")
        for model in (self.bundle.generator, self.bundle.grader):
            if model is not None:
                layout = torch.channels_last if channels_last else torch.contiguous_format  # the modules may be
                model.to(self.device, memory_format=layout).eval()  # shared with a predictor of the other layout

    @property
    def input_preprocess(self) -> PreprocessConfig:
        """The preprocessing of the images :meth:`forward` takes (G's size when the bundle has its own)."""
        return self.bundle.input_preprocess

    @property
    def has_dme(self) -> bool:
        """Whether the model predicts DME (its grader has a DME head), so the referable rule looks at DME."""
        grader = self.bundle.grader
        return grader is not None and grader.dme_classifier is not None

    @property
    def grader_factor(self) -> int:
        """How many input pixels, per side, one grader pixel averages (1 when G and the grader share a size)."""
        return self.input_preprocess.size // self.bundle.preprocess.size

    def preprocess(self, image: np.ndarray) -> Preprocessed:
        return preprocess(image, None, self.input_preprocess)

    @torch.inference_mode()
    def forward(self, images: torch.Tensor) -> Probabilities:
        """``(B, 3, S, S)`` input -> lesion ``(B, L, S, S)``, DR grade ``(B, G)`` and DME ``(B, 3)`` probabilities.

        ``S`` is :attr:`input_preprocess`'s size. When G has its own, larger size, the grader sees the image and
        the masks averaged over ``grader_factor x grader_factor`` blocks, i.e. at the size it was trained at. G's
        masks (and lesion statistics) reach it through the one mask path, ``models/mask_path.py``.
        With :attr:`tta`, each output is the mean of the probabilities over the flipped copies of the input
        (the lesion maps flipped back first): probabilities, not logits, are averaged.
        """
        images = images.to(self.device)
        runs = [self._forward_flipped(images, dims) for dims in TTA_FLIPS[self.tta]]
        if len(runs) == 1:
            return runs[0]
        parts = zip(*runs, strict=True)  # (masks, masks, ...), (grades, ...), (dme, ...)
        return Probabilities(*(None if p[0] is None else torch.stack(p).mean(0) for p in parts))

    def _forward_flipped(self, images: torch.Tensor, dims: tuple[int, ...]) -> Probabilities:
        """:meth:`forward` without test-time flips on ``images`` flipped along ``dims``; lesion maps flipped back."""
        if dims:
            images = images.flip(dims)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        ctx = torch.autocast(self.device.type, dtype=torch.bfloat16) if self.amp else contextlib.nullcontext()
        g, c = self.bundle.generator, self.bundle.grader
        with ctx:
            masks = inputs = None
            if g is not None:
                uses_stats = c is not None and c.config.lesion_stats
                inputs = grader_inputs(g, images, self.grader_factor, self.tile, self.overlap, uses_stats)
                masks = inputs.full  # (B, L, S, S)
            grades = dme = None
            if c is not None:
                k = self.grader_factor
                small = images if k == 1 else F.avg_pool2d(images, k)  # (B, 3, S/k, S/k)
                out = c(small) if inputs is None else c(small, inputs.masks, inputs.stats)
                grades = torch.softmax(out.logits.float(), dim=1)
                if out.dme_logits is not None:
                    dme = torch.softmax(out.dme_logits.float(), dim=1)
        if masks is not None and dims:
            masks = masks.flip(dims)
        return Probabilities(masks, grades, dme)

    def predict(self, images: list[np.ndarray]) -> list[Prediction]:
        """Preprocess and predict a batch of ``(H, W, 3)`` uint8 RGB images."""
        pres = [self.preprocess(im) for im in images]
        return self.predict_preprocessed(pres)

    def predict_preprocessed(self, pres: list[Preprocessed]) -> list[Prediction]:
        batch = torch.stack([image_to_tensor(p.image) for p in pres])  # (B, 3, S, S)
        masks, grades, dme = self.forward(batch)
        refer = None
        if grades is not None:
            dme_np = None if dme is None else dme.cpu().numpy()
            refer = referable_probability(grades.cpu().numpy(), dme_np, self.referable)  # (B,)
        out = []
        for i, pre in enumerate(pres):
            lesion = None if masks is None else masks[i].cpu().numpy()  # (L, S, S)
            area = {}
            if lesion is not None and self.outside_fov == "zero":
                lesion = lesion * pre.fov  # (L, S, S), 0 where G's outputs mean nothing
            if lesion is not None:
                fov = max(int(pre.fov.sum()), 1)
                area = {name: float(((lesion[k] > 0.5) & pre.fov).sum() / fov) for k, name in enumerate(LESIONS)}
            if grades is None:
                out.append(Prediction(None, [], None, None, lesion, area, pre))
                continue
            p = grades[i].cpu().numpy().astype(float)
            ref = float(refer[i])
            pred = Prediction(int(p.argmax()), p.round(6).tolist(), ref >= self.referable.threshold, ref, lesion,
                              area, pre)
            if dme is not None:
                q = dme[i].cpu().numpy().astype(float)
                pred.dme, pred.dme_probabilities = int(q.argmax()), q.round(6).tolist()
            out.append(pred)
        return out
