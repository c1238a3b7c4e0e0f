"""Run an exported ONNX graph (see :mod:`drcollab.inference.onnx_export`) with onnxruntime's CPU provider."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from pydantic import ValidationError

from drcollab.config import PreprocessConfig, ReferableConfig, format_validation_error
from drcollab.constants import GRADES, LESIONS
from drcollab.errors import DataError
from drcollab.inference.bundle import Bundle
from drcollab.inference.onnx_export import DME_OUTPUT, FORMAT_VERSION, INPUT_NAME, OUTPUTS
from drcollab.inference.predictor import Predictor, Probabilities


@dataclass(frozen=True)
class OnnxMetadata:
    """The drcollab entries of an exported graph's ``metadata_props``."""

    name: str
    fingerprint: str
    preprocess: PreprocessConfig
    outputs: list[str]
    input_size: str
    referable: ReferableConfig


def read_metadata(props: dict[str, str], path: Path) -> OnnxMetadata:
    """Parse and check the ``drcollab.*`` metadata of the ONNX file ``path``.

    Raises:
        DataError: naming the file when an entry is missing or disagrees with this version of drcollab.
    """
    version = props.get("drcollab.format_version")
    if version is None:
        raise DataError(path, "no drcollab metadata: export it with `drcollab export --format onnx`")
    if version != FORMAT_VERSION:
        raise DataError(path, f"export format version {version}, this drcollab reads {FORMAT_VERSION}: export again")
    try:
        preprocess = PreprocessConfig.model_validate_json(props["drcollab.preprocess"])
        # Exports from before the DME head carry no rule: they get the default, which is DR-only without DME.
        referable = ReferableConfig.model_validate_json(props.get("drcollab.referable", "{}"))
        meta = OnnxMetadata(
            props["drcollab.name"], props["drcollab.fingerprint"], preprocess,
            json.loads(props["drcollab.outputs"]), props["drcollab.input_size"], referable,
        )
        lesions, grades = json.loads(props["drcollab.lesions"]), json.loads(props["drcollab.grades"])
    except KeyError as err:
        raise DataError(path, f"metadata entry {err.args[0]!r} missing: export it again") from err
    except ValidationError as err:
        raise DataError(path, format_validation_error(err, "its drcollab metadata")) from err
    if lesions != list(LESIONS) or grades != list(GRADES):
        raise DataError(path, f"exported for lesions {lesions} and grades {grades}, expected {list(LESIONS)}, "
                              f"{list(GRADES)}")
    return meta


class OnnxPredictor(Predictor):
    """A :class:`Predictor` whose :meth:`forward` runs the ONNX graph.

    Preprocessing (from the file's metadata) and the post-processing of :meth:`predict_preprocessed` are
    inherited unchanged, so both engines produce the same kind of :class:`Prediction`.

    Args:
        path: The exported ``.onnx`` file.
        referable: Who is referred; None takes the rule stored in the file.
        threads: onnxruntime intra-op threads (None: onnxruntime's default, all cores).
    """

    def __init__(self, path: str | Path, referable: ReferableConfig | None = None, threads: int | None = None) -> None:
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise DataError(path, "ONNX file not found")
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types for unreadable graphs
            raise DataError(path, f"onnxruntime cannot load it ({err})") from err
        self.metadata = read_metadata(self.session.get_modelmeta().custom_metadata_map, path)
        # Predictor.__init__ loads torch networks; this engine has none, only what the inherited methods read.
        self.bundle = Bundle(None, None, self.metadata.preprocess, {"name": self.metadata.name}, path.parent,
                             referable=self.metadata.referable)
        self.device = torch.device("cpu")
        self.amp, self.channels_last = False, False
        self.referable = referable or self.metadata.referable
        self.outside_fov = "zero"  # the graph returns G's raw maps; predict_preprocessed zeroes them outside the FOV

    @property
    def has_dme(self) -> bool:
        return DME_OUTPUT in self.metadata.outputs

    def forward(self, images: torch.Tensor) -> Probabilities:
        """``(B, 3, S, S)`` input -> lesion ``(B, L, S, S)``, DR grade ``(B, G)`` and DME ``(B, 3)`` probabilities."""
        feed = {INPUT_NAME: images.detach().float().contiguous().numpy()}
        outs = dict(zip(self.metadata.outputs, self.session.run(None, feed), strict=True))
        return Probabilities(*(None if outs.get(n) is None else torch.from_numpy(outs[n]) for n in OUTPUTS))
