"""Pick the engine that runs a checkpoint: PyTorch for a model bundle, onnxruntime for an exported ``.onnx`` file.

``drcollab predict``, ``serve`` and ``evaluate`` and the Python entry point all go through :func:`load_engine`, so a
bundle and its ONNX export are interchangeable: both carry the same preprocessing and the same model fingerprint.
A bundle runs in the fastest setting whose answers match the plain fp32 path on this machine
(:mod:`drcollab.inference.autotune`), unless the caller asks for the plain path or names a setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from drcollab.config import Tta
from drcollab.errors import ConfigError, DataError
from drcollab.inference.autotune import REFERENCE, Choice, Setting, choose_setting, make_predictor
from drcollab.inference.bundle import bundle_fingerprint, load_bundle
from drcollab.inference.predictor import Predictor

ENGINES = ("torch", "onnx")
SETTINGS = ("auto", "plain")


@dataclass
class Engine:
    """A ready predictor and what it runs.

    Attributes:
        predictor: :class:`Predictor` (or its ONNX subclass).
        kind: ``"torch"`` or ``"onnx"``.
        name: The bundle's name.
        fingerprint: Short hash of the bundle's files; an ONNX export keeps its bundle's fingerprint.
        checkpoint: The path the engine was loaded from.
        choice: How the torch engine runs the bundle and why (None for the ONNX engine).
    """

    predictor: Predictor
    kind: str
    name: str
    fingerprint: str
    checkpoint: Path
    choice: Choice | None = None

    def describe(self) -> dict:
        """JSON-ready: the model, the engine and the setting it runs in (recorded in ``predictions.json``)."""
        out: dict = {"name": self.name, "fingerprint": self.fingerprint, "engine": self.kind,
                     "checkpoint": str(self.checkpoint)}
        if self.choice is not None:
            out["setting"] = self.setting_text()
            out["choice"] = self.choice.record()
        return out

    def setting_text(self) -> str:
        """One line: the engine and its setting, e.g. ``torch, bf16 + channels_last, G in one whole pass``."""
        if self.choice is None:
            return f"{self.kind} (onnxruntime, CPU)"
        tile = self.predictor.tile
        return f"{self.kind}, {self.choice.setting.describe(tile)} ({self.choice.reason})"


def resolve_engine(checkpoint: Path, engine: str | None) -> str:
    """The engine for ``checkpoint``: ``engine`` if given, else ``onnx`` for a ``.onnx`` file and ``torch`` otherwise.
    ``onnx`` for a bundle runs its graph from the cache (built on first use, :mod:`drcollab.inference.onnx_cache`).

    Raises:
        ConfigError: an unknown engine, or an engine that cannot read this checkpoint.
    """
    is_onnx = checkpoint.suffix.lower() == ".onnx"
    if engine is None:
        return "onnx" if is_onnx else "torch"
    if engine not in ENGINES:
        raise ConfigError(f"engine {engine!r}: choose one of {', '.join(ENGINES)}")
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
    setting: str = "auto",
) -> Engine:
    """Load a bundle (run folder, bundle folder or ``bundle.json``) or an exported ``.onnx`` file.

    ``tta`` (torch engine): the test-time flips, see :class:`Predictor`; None takes the bundle's.
    ``setting`` (torch engine): ``auto`` runs the bundle in the fastest setting whose answers match the plain path
    (measured once per machine, see :mod:`drcollab.inference.autotune`); ``plain`` runs fp32 in the bundle's tiles.
    ``amp`` or ``channels_last`` name the setting themselves (no measurement).

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
        graph = checkpoint
        if checkpoint.suffix.lower() != ".onnx":
            from drcollab.inference.onnx_cache import cached_graph  # torch.export loads only when asked for

            graph, _ = cached_graph(checkpoint)
        predictor = OnnxPredictor(graph)
        meta = predictor.metadata
        return Engine(predictor, kind, meta.name, meta.fingerprint, checkpoint)
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r}: CUDA is not available on this machine; use --device cpu")
    if not checkpoint.exists():
        raise DataError(checkpoint, "checkpoint not found")
    if setting not in SETTINGS:
        raise ConfigError(f"setting {setting!r}: choose one of {', '.join(SETTINGS)}")
    bundle = load_bundle(checkpoint, device)
    fingerprint = bundle_fingerprint(bundle)
    if amp or channels_last:
        choice = Choice(Setting("bf16" if amp else "fp32", channels_last), "as asked", {})
    elif setting == "plain":
        choice = Choice(REFERENCE, "the plain path, as asked", {})
    else:
        choice = choose_setting(bundle, fingerprint, torch.device(device))
    predictor = make_predictor(bundle, torch.device(device), choice.setting, tta=tta)
    name = str(bundle.info.get("name", bundle.root.name))
    return Engine(predictor, kind, name, fingerprint, checkpoint, choice)
