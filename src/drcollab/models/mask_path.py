"""One mask path: what the grader is given from G, the same in training and in prediction.

G runs on the image at its own size ``S`` (whole, or in overlapping tiles when it was trained on crops,
``models/tiling.py``); its probabilities are averaged over ``k x k`` blocks to the grader's size ``s = S / k`` and
quantised to 1/255 (the training cache stores them as uint8, so prediction rounds them too and the grader sees
the very values it was trained on); the lesion statistics (``models/lesion_stats.py``) are computed on the
full-resolution probabilities. ``Predictor.forward`` calls :func:`grader_inputs`, and so does the training
precompute (``training/mask_inputs.py``) whenever G is frozen while the grader trains.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from drcollab.models.lesion_stats import lesion_statistics
from drcollab.models.tiling import tiled_apply

LEVELS = 255  # pooled masks are multiples of 1 / LEVELS, stored as uint8


class GraderInputs(NamedTuple):
    """What G gives the grader: ``masks`` ``(B, L, s, s)`` pooled to its size, ``stats`` ``(B, S)`` (None when not
    asked for) and G's ``full`` probabilities ``(B, L, S, S)``, all float32."""

    masks: torch.Tensor
    stats: torch.Tensor | None
    full: torch.Tensor


def quantise(masks: torch.Tensor) -> torch.Tensor:
    """Probabilities -> uint8 levels ``round(255 p)``."""
    return torch.round(masks.float() * LEVELS).to(torch.uint8)


def dequantise(levels: torch.Tensor) -> torch.Tensor:
    """uint8 levels -> float32 probabilities ``n / 255`` (exactly what :func:`grader_inputs` gives)."""
    return levels.float() / LEVELS


def grader_inputs(
    generator: nn.Module, images: torch.Tensor, grader_factor: int, tile: int, overlap: int, stats: bool = False
) -> GraderInputs:
    """G's masks for the grader from images ``(B, 3, S, S)`` preprocessed at G's size.

    Args:
        generator: G, in eval mode (the caller chooses no-grad / inference mode and precision).
        images: Normalised images (``data/transforms.py`` ``image_to_tensor``) at G's size ``S``.
        grader_factor: ``k = S / s``, the grader's size being ``s``.
        tile: G's window side (0: the whole image), ``overlap`` the windows' minimum overlap.
        stats: Also compute the lesion statistics.
    """
    # channels_last windows run stacked (several times faster); contiguous fp32 keeps one window per call (stacked it
    # measured no faster, benchmarks/bench_predict_equality.py)
    per_call = None if images.is_contiguous(memory_format=torch.channels_last) and images.shape[1] > 1 else 1
    logits = tiled_apply(generator, images, tile, overlap, per_call) if tile else generator(images)
    full = torch.sigmoid(logits.float())  # (B, L, S, S)
    pooled = full if grader_factor == 1 else F.avg_pool2d(full, grader_factor)  # (B, L, s, s)
    pooled = dequantise(quantise(pooled))
    return GraderInputs(pooled, lesion_statistics(full) if stats else None, full)


def generator_digest(generator: nn.Module) -> str:
    """sha256 of G's state (every parameter and buffer: name, dtype, shape, bytes), for cache keys."""
    digest = hashlib.sha256()
    for name, value in sorted(generator.state_dict().items()):
        t = value.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
