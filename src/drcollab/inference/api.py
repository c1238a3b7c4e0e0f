"""The Python entry point: load a trained model once, then grade photos given as paths, PIL images or arrays.

    import drcollab

    model = drcollab.load("release/drcollab-idrid-cpu")
    result = model.predict("photo.jpg")  # or a PIL image, an (H, W, 3) uint8 array, or a list of them
    if result.gradable:
        print(result.grade_name, result.referable, result.lesion_area["EX"])
        ex = result.lesion_map("EX")  # (H, W) float32 probabilities on the photo's own pixels
    else:
        print("cannot grade:", result.reasons)

A photo goes through the same steps as in ``drcollab predict`` and ``drcollab serve``, which call the functions
here: the header check (too small, a strip), decoding as displayed (``data/io.py``), the gradability check, the
preprocessing and the model, run in the setting :func:`load` chose (:mod:`drcollab.inference.autotune`). A photo
the checks refuse is a :class:`Result` with ``gradable`` False and its reasons, never an exception; a file that
cannot be read raises :class:`drcollab.errors.DataError` naming it (the CLI's ``error:`` line), and a model output
that is not finite raises :class:`NonFiniteOutput`: neither is ever a grade.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np
from PIL import Image

from drcollab.constants import DME_GRADES, GRADES, LESIONS
from drcollab.data.header import ImageLimits, shape_problem
from drcollab.data.io import header_size, read_image, to_rgb
from drcollab.data.preprocess import Geometry, Preprocessed
from drcollab.data.scan import scan_images
from drcollab.errors import DataError
from drcollab.inference.engine import Engine, load_engine
from drcollab.inference.gradability import GradabilityConfig, check_gradable, header_reasons
from drcollab.inference.outputs import non_finite
from drcollab.inference.predictor import Prediction

Photo = Union[str, Path, Image.Image, np.ndarray]  # noqa: UP007 (a runtime alias, read on Python 3.10)


class NonFiniteOutput(DataError):
    """The model's output for a photo is NaN or infinite: the model is damaged; never a grade."""


@dataclass(frozen=True)
class Ungradable:
    """A photo the checks refused: its ``(width, height)``, the reasons and the measures taken (none from the
    header)."""

    size_wh: tuple[int, int]
    reasons: list[str]
    measures: dict[str, float]


@dataclass(frozen=True)
class Ready:
    """A photo that passed the checks: the decoded image, its preprocessed input and its quality measures."""

    image: np.ndarray
    pre: Preprocessed
    measures: dict[str, float]


@dataclass
class Result:
    """What the model says about one photo (the fields of a ``predict`` record, with the maps as arrays).

    Attributes:
        source: The path, or ``"<image>"`` for an image given in memory.
        width, height: The photo's size as displayed.
        gradable: False when the checks refused the photo; then ``reasons`` says why and there is no grade.
        lesion_probs: ``(L, S, S)`` float32 lesion probabilities at the model's resolution (0 outside the field of
            view); ``geometry`` maps them onto the photo (:meth:`lesion_map`). None when ungradable.
    """

    source: str
    width: int
    height: int
    gradable: bool
    reasons: list[str] = field(default_factory=list)
    quality: dict[str, float] = field(default_factory=dict)
    grade: int | None = None
    probabilities: list[float] = field(default_factory=list)
    dme: int | None = None
    dme_probabilities: list[float] = field(default_factory=list)
    referable: bool | None = None
    referable_probability: float | None = None
    lesion_area: dict[str, float] = field(default_factory=dict)
    lesion_probs: np.ndarray | None = None
    geometry: Geometry | None = None

    @property
    def grade_name(self) -> str | None:
        return None if self.grade is None else GRADES[self.grade]

    @property
    def dme_name(self) -> str | None:
        return None if self.dme is None else DME_GRADES[self.dme]

    def lesion_map(self, lesion: str, at: str = "photo") -> np.ndarray:
        """One lesion's probabilities: ``at="photo"`` on the photo's pixels ``(H, W)``, ``"model"`` at the model's
        resolution ``(S, S)``."""
        if self.lesion_probs is None or self.geometry is None:
            raise ValueError(f"{self.source}: no lesion maps ({'; '.join(self.reasons) or 'the model has no G'})")
        if lesion not in LESIONS:
            raise ValueError(f"lesion {lesion!r}: choose one of {', '.join(LESIONS)}")
        probs = self.lesion_probs[LESIONS.index(lesion)]
        return probs if at == "model" else self.geometry.to_original(probs)

    def summary(self) -> dict[str, Any]:
        """JSON-ready fields (no arrays)."""
        skip = {"lesion_probs", "geometry"}
        out = {k: v for k, v in self.__dict__.items() if k not in skip}
        return {**out, "grade_name": self.grade_name, "dme_name": self.dme_name}


def examine_image(engine: Engine, image: np.ndarray, quality: GradabilityConfig) -> Ready | Ungradable:
    """The gradability check, then the preprocessing, of a decoded ``(H, W, 3)`` uint8 RGB photo.

    Raises:
        ValueError: the image cannot be preprocessed (an unusable shape).
    """
    size = engine.predictor.input_preprocess.size  # the minimum FOV diameter scales with it
    gradable, reasons, measures = check_gradable(image, quality, size, engine.predictor.bundle.min_fov_fraction)
    if not gradable:
        return Ungradable((image.shape[1], image.shape[0]), reasons, measures)
    return Ready(image, engine.predictor.preprocess(image), measures)


def examine_file(engine: Engine, path: Path, limits: ImageLimits, quality: GradabilityConfig) -> Ready | Ungradable:
    """The header check, decoding as displayed, then :func:`examine_image`.

    Raises:
        DataError: the file cannot be read or decoded, naming it.
    """
    size = header_size(path)
    shape = None if size is None else shape_problem(*size, limits)
    if shape is not None:  # refused from the header: nothing decoded
        return Ungradable(size, header_reasons(shape), {})
    image = read_image(path, limits)  # refuses pixel data cut short before decoding
    try:
        return examine_image(engine, image, quality)
    except ValueError as err:  # unusable shape
        raise DataError(path, f"cannot preprocess: {err}") from err


def to_result(source: str, examined: Ready | Ungradable, pred: Prediction | None = None) -> Result:
    """The :class:`Result` of an examined photo and, when it was gradable, its prediction."""
    if isinstance(examined, Ungradable):
        w, h = examined.size_wh
        return Result(source, w, h, False, examined.reasons, examined.measures)
    h, w = examined.image.shape[:2]
    return Result(source, w, h, True, [], examined.measures, pred.grade, pred.probabilities, pred.dme,
                  pred.dme_probabilities, pred.referable, pred.referable_probability, pred.lesion_area,
                  pred.lesion_probs, pred.pre.geometry)


class Model:
    """A loaded model that grades photos (see the module docstring); :func:`load` makes one.

    Attributes:
        engine: The engine, its bundle's name and fingerprint, and the setting it runs in.
        limits: The size and shape below which a photo is refused from its header.
        quality: The gradability thresholds.
    """

    def __init__(self, engine: Engine, limits: ImageLimits | None = None, quality: GradabilityConfig | None = None):
        self.engine = engine
        self.limits = limits or ImageLimits()
        self.quality = quality or GradabilityConfig()

    def __repr__(self) -> str:
        return f"Model({self.engine.name!r}, {self.engine.setting_text()})"

    def examine(self, photo: Photo) -> tuple[str, Ready | Ungradable]:
        """The photo's source name and its checks (:func:`examine_file` / :func:`examine_image`)."""
        if isinstance(photo, str | Path):
            found, report = scan_images([Path(photo)])  # the CLI's words for a missing or non-image file
            if report.skipped:
                raise DataError(photo, report.skipped[0][1])
            if found != [Path(photo)]:
                raise DataError(photo, "is a folder: pass its photos, e.g. sorted(Path(folder).glob('*.jpg'))")
            return str(photo), examine_file(self.engine, Path(photo), self.limits, self.quality)
        if isinstance(photo, Image.Image):
            image = to_rgb(photo.copy())  # as displayed; the caller's image is left as it was
        elif isinstance(photo, np.ndarray):
            image = _checked_array(photo)
        else:
            raise TypeError(f"predict takes a path, a PIL image or an (H, W, 3) uint8 array, not {type(photo)}")
        problem = shape_problem(image.shape[1], image.shape[0], self.limits)
        if problem is not None:
            return "<image>", Ungradable((image.shape[1], image.shape[0]), header_reasons(problem), {})
        try:
            return "<image>", examine_image(self.engine, image, self.quality)
        except ValueError as err:
            raise DataError("<image>", f"cannot preprocess: {err}") from err

    def predict(self, photos: Photo | list[Photo], batch_size: int = 4) -> Result | list[Result]:
        """Grade one photo (returns a :class:`Result`) or a list of them (returns a list, in order).

        Raises:
            DataError: a file that cannot be read, naming it.
            NonFiniteOutput: the model's output for a photo is not finite.
        """
        single = not isinstance(photos, list)
        items = [photos] if single else photos
        results: list[Result] = []
        for start in range(0, len(items), batch_size):
            examined = [self.examine(p) for p in items[start : start + batch_size]]
            ready = [e for _, e in examined if isinstance(e, Ready)]
            preds = iter(self.engine.predictor.predict_preprocessed([r.pre for r in ready]) if ready else [])
            for source, e in examined:
                pred = next(preds) if isinstance(e, Ready) else None
                if pred is not None and (reason := non_finite(pred)) is not None:
                    raise NonFiniteOutput(source, reason)
                results.append(to_result(source, e, pred))
        return results[0] if single else results


def _checked_array(array: np.ndarray) -> np.ndarray:
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise DataError("<image>", f"an array photo must be (H, W, 3) uint8 RGB, got {array.shape} {array.dtype}")
    return array


def load(
    checkpoint: str | Path,
    device: str = "cpu",
    engine: str | None = None,
    setting: str = "auto",
    limits: ImageLimits | None = None,
    quality: GradabilityConfig | None = None,
) -> Model:
    """Load a bundle (run folder, bundle folder or ``bundle.json``) or an exported ``.onnx`` file for prediction.

    Args:
        device: ``cpu`` or ``cuda`` (torch engine).
        engine: ``torch`` or ``onnx`` (default: ``onnx`` for a ``.onnx`` file, else ``torch``).
        setting: ``auto`` (the fastest setting whose answers match plain fp32, measured once per machine) or
            ``plain`` (fp32 in the bundle's tiles).
        limits, quality: The header limits and gradability thresholds (defaults: ``drcollab predict``'s).

    Raises:
        DataError: a missing or invalid checkpoint, naming the file.
        ConfigError: an option the engine cannot honour.
    """
    return Model(load_engine(checkpoint, engine, device, setting=setting), limits, quality)
