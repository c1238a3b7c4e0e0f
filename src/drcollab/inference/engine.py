"""Pick the engine that runs a checkpoint: PyTorch for a model bundle, onnxruntime for an exported ``.onnx`` file.

``drcollab predict`` and ``drcollab serve`` both go through :func:`load_engine`, so a bundle and its ONNX export
are interchangeable: both carry the same preprocessing and the same model fingerprint.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from drcollab.config import Tta
from drcollab.errors import ConfigError, DataError
from drcollab.inference.bundle import bundle_fingerprint, load_bundle
from drcollab.inference.predictor import Predictor

ENGINES = ("torch", "onnx")


@dataclass
class Engine:
    """A ready predictor and what it runs.

    Attributes:
        predictor: :class:`Predictor` (or its ONNX subclass).
        kind: ``"torch"`` or ``"onnx"``.
        name: The bundle's name.
        fingerprint: Short hash of the bundle's files; an ONNX export keeps its bundle's fingerprint.
        checkpoint: The path the engine was loaded from.
    """

    predictor: Predictor
    kind: str
    name: str
    fingerprint: str
    checkpoint: Path

    def describe(self) -> dict[str, str]:
        return {
            "name": self.name,
            "fingerprint": self.fingerprint,
            "engine": self.kind,
            "checkpoint": str(self.checkpoint),
        }


def resolve_engine(checkpoint: Path, engine: str | None) -> str:
    """The engine for ``checkpoint``: ``engine`` if given, else ``onnx`` for a ``.onnx`` file and ``torch`` otherwise.

    Raises:
        ConfigError: an unknown engine, or an engine that cannot read this checkpoint.
    """
    is_onnx = checkpoint.suffix.lower() == ".onnx"
    if engine is None:
        return "onnx" if is_onnx else "torch"
    if engine not in ENGINES:
        raise ConfigError(f"engine {engine!r}: choose one of {', '.join(ENGINES)}")
    if engine == "onnx" and not is_onnx:
        raise ConfigError(
            f"--engine onnx needs an exported .onnx file, got {checkpoint}: "
            f"run `drcollab export --checkpoint {checkpoint} --format onnx --out model.onnx` first"
        )
    if engine == "torch" and is_onnx:
        raise ConfigError(f"--engine torch needs a model bundle, got the ONNX file {checkpoint}: use --engine onnx")
    return engine


def load_engine(
    checkpoint: str | Path,
    engine: str | None = None,
    device: str = "cpu",
    amp: bool = False,
    channels_last: bool = False,
    tta: Tta | None = None,
) -> Engine:
    """Load a bundle (run folder, bundle folder or ``bundle.json``) or an exported ``.onnx`` file.

    ``tta`` (torch engine): the test-time flips, see :class:`Predictor`; None takes the bundle's.

    Raises:
        ConfigError: an option the engine cannot honour (CUDA without a GPU, ``amp`` under onnxruntime, ...).
        DataError: a missing or invalid checkpoint, naming the file.
    """
    checkpoint = Path(checkpoint)
    kind = resolve_engine(checkpoint, engine)
    if kind == "onnx":
        from drcollab.inference.onnx_engine import OnnxPredictor  # onnxruntime loads only when asked for

        if device != "cpu" or amp or channels_last:
            raise ConfigError("the onnx engine runs on onnxruntime's CPU provider: drop --device/--amp/--channels-last")
        if tta is not None:
            raise ConfigError("an ONNX graph runs the test-time flips it was exported with (its bundle's tta): "
                              "drop --tta, or export the bundle again with the tta you want in its bundle.json")
        predictor = OnnxPredictor(checkpoint)
        meta = predictor.metadata
        return Engine(predictor, kind, meta.name, meta.fingerprint, checkpoint)
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r}: CUDA is not available on this machine; use --device cpu")
    if not checkpoint.exists():
        raise DataError(checkpoint, "checkpoint not found")
    bundle = load_bundle(checkpoint, device)
    predictor = Predictor(bundle, device=device, amp=amp, channels_last=channels_last, tta=tta)
    name = str(bundle.info.get("name", bundle.root.name))
    return Engine(predictor, kind, name, bundle_fingerprint(bundle), checkpoint)
