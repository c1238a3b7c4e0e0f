"""Export a model bundle to one ONNX graph: image ``(B, 3, H, W)`` -> lesion, grade and DME probabilities.

The graph is :meth:`Predictor.forward` in fp32 (G, sigmoid, grader, softmax; G tiled and the test-time flips
averaged when the bundle says so),
exported with ``torch.export`` (``torch.onnx.export(dynamo=True)``). Batch is always dynamic; H and W are dynamic
in multiples of 16 (G's four 2x2 poolings) unless the bundle tiles G, whose window loop depends on the image
size: then they are fixed to the bundle's preprocess size. ``predict`` always feeds that size anyway.

Metadata stored in the ONNX file (``metadata_props``, all strings) so ``predict --engine onnx`` needs nothing
else: ``drcollab.preprocess`` (the bundle's preprocess config as JSON), ``drcollab.name``,
``drcollab.fingerprint`` (of the source bundle), ``drcollab.lesions``, ``drcollab.grades``,
``drcollab.outputs`` (``lesion_probs``, ``grade_probs`` and, with a DME head, ``dme_probs``), ``drcollab.referable``
(the bundle's referable rule as JSON), ``drcollab.input_size`` (``dynamic`` or ``fixed``), ``drcollab.tta`` (the
test-time flips in the graph, the bundle's ``tta``) and ``drcollab.format_version``.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from drcollab.constants import GRADES, LESIONS
from drcollab.errors import DrcollabError
from drcollab.inference.bundle import bundle_fingerprint, load_bundle
from drcollab.inference.predictor import Predictor
from drcollab.models.generator import SIZE_MULTIPLE

FORMAT_VERSION = "1"
INPUT_NAME = "image"
LESION_OUTPUT, GRADE_OUTPUT, DME_OUTPUT = "lesion_probs", "grade_probs", "dme_probs"
OUTPUTS = (LESION_OUTPUT, GRADE_OUTPUT, DME_OUTPUT)  # the order of Predictor.forward's Probabilities


class ExportError(DrcollabError):
    """The bundle could not be exported (the message says why)."""


@dataclass
class OnnxExport:
    """What :func:`export_onnx` wrote.

    Attributes:
        path: The ``.onnx`` file.
        dynamic_size: Whether H and W are dynamic (multiples of 16) or fixed to ``size``.
        size: The bundle's preprocess size.
        outputs: Output names in graph order.
        max_abs_diff: Largest difference between onnxruntime and PyTorch on a check input.
        note: Why the size is fixed, when it is.
    """

    path: Path
    dynamic_size: bool
    size: int
    outputs: list[str]
    max_abs_diff: float
    note: str = ""


class _ForwardGraph(nn.Module):
    """``Predictor.forward`` as a module whose outputs are the probabilities the bundle can produce."""

    def __init__(self, predictor: Predictor) -> None:
        super().__init__()
        self.predictor = predictor
        parts = (predictor.bundle.generator, predictor.bundle.grader)
        self.nets = nn.ModuleList([m for m in parts if m is not None])  # registered so export sees the weights

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        probs = self.predictor.forward(image)  # (B, L, H, W), (B, G), (B, 3)
        return tuple(t for t in probs if t is not None)


def _export(
    graph: _ForwardGraph, example: torch.Tensor, dynamic_size: bool, outputs: list[str]
) -> torch.onnx.ONNXProgram:
    dims = {0: torch.export.Dim("batch")}
    if dynamic_size:
        dims.update({2: SIZE_MULTIPLE * torch.export.Dim("h16"), 3: SIZE_MULTIPLE * torch.export.Dim("w16")})
    return torch.onnx.export(
        graph, (example,), input_names=[INPUT_NAME], output_names=outputs, dynamo=True,
        dynamic_shapes=({**dims},), verbose=False,
    )


def _check(path: Path, predictor: Predictor, example: torch.Tensor) -> float:
    """Max |onnxruntime - PyTorch| over the outputs for ``example``."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {INPUT_NAME: example.numpy()})
    want = [t for t in predictor.forward(example) if t is not None]
    return max(float(np.abs(g - w.numpy()).max()) for g, w in zip(got, want, strict=True))


def export_onnx(checkpoint: str | Path, out: str | Path) -> OnnxExport:
    """Export a bundle (any path :func:`load_bundle` accepts) to ``out`` (written atomically).

    Raises:
        DataError: a missing or invalid bundle.
        ExportError: ``torch.export`` could not trace the model at the bundle's size.
    """
    out = Path(out)
    bundle = load_bundle(checkpoint)
    predictor = Predictor(bundle)  # fp32 on the CPU
    size = bundle.input_preprocess.size
    has_dme = bundle.grader is not None and bundle.grader.dme_classifier is not None
    outputs = [name for name, present in zip(OUTPUTS, (bundle.generator is not None, bundle.grader is not None,
                                                       has_dme), strict=True) if present]
    graph = _ForwardGraph(predictor).eval()
    example = torch.rand(2, 3, size, size) * 2 - 1  # batch 2: export specialises a batch of 1
    tile = int(bundle.info.get("tile") or 0)
    note = f"fixed to {size}x{size}: the bundle runs G in {tile}-px tiles" if 0 < tile < size else ""
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    program = None
    if not note:
        try:
            program = _export(graph, example, True, outputs)
        except Exception as err:  # any tracing failure falls back to the fixed size
            note = f"fixed to {size}x{size}: a dynamic size could not be exported ({type(err).__name__})"
    if program is None:
        try:
            program = _export(graph, example, False, outputs)
        except Exception as err:
            raise ExportError(f"{bundle.root}: torch.export failed at {size}x{size}: {err}") from err
    program.model.metadata_props.update(
        {
            "drcollab.format_version": FORMAT_VERSION,
            "drcollab.name": str(bundle.info.get("name", bundle.root.name)),
            "drcollab.fingerprint": bundle_fingerprint(bundle),
            "drcollab.preprocess": bundle.input_preprocess.model_dump_json(),
            "drcollab.lesions": json.dumps(list(LESIONS)),
            "drcollab.grades": json.dumps(list(GRADES)),
            "drcollab.outputs": json.dumps(outputs),
            "drcollab.referable": bundle.referable.model_dump_json(),
            "drcollab.input_size": "fixed" if note else "dynamic",
            "drcollab.tta": predictor.tta,
        }
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    program.save(tmp, external_data=False)
    diff = _check(tmp, predictor, example)
    os.replace(tmp, out)
    return OnnxExport(out, not note, size, outputs, diff, note)
