"""Tiled generator inference: exact for a 1x1-conv model, close for the tiny U-Net, wired into Predictor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from drcollab.config import GeneratorConfig, PreprocessConfig
from drcollab.inference.bundle import Bundle
from drcollab.inference.predictor import Predictor
from drcollab.inference.tiling import tile_starts, tiled_apply
from drcollab.models import LesionGenerator


@pytest.mark.parametrize(
    ("length", "tile", "overlap", "expected"),
    [
        (64, 64, 16, [0]),
        (40, 64, 16, [0]),
        (128, 64, 16, [0, 48, 64]),
        (100, 32, 8, [0, 16, 32, 48, 64, 68]),
        (96, 64, 0, [0, 32]),
    ],
)
def test_tile_starts_cover_the_axis_with_the_overlap(length: int, tile: int, overlap: int, expected: list[int]) -> None:
    starts = tile_starts(length, tile, overlap)
    assert starts == expected
    covered = np.zeros(length, dtype=int)
    for s in starts:
        covered[s : min(s + tile, length)] += 1
    assert covered.min() >= 1
    for a, b in zip(starts, starts[1:], strict=False):
        assert a + tile - b >= overlap  # neighbours overlap at least as asked


def test_tile_starts_refuse_an_overlap_that_leaves_no_step() -> None:
    with pytest.raises(ValueError, match="overlap <= 48"):
        tile_starts(200, 64, 60)


def test_tiled_apply_is_exact_for_a_pointwise_model() -> None:
    torch.manual_seed(0)
    model = nn.Conv2d(3, 4, kernel_size=1).eval()
    images = torch.rand(2, 3, 80, 112)
    with torch.no_grad():
        whole = model(images)
        tiled = tiled_apply(model, images, tile=32, overlap=8)
    assert tiled.shape == whole.shape
    torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=1e-5)


def test_tiled_apply_is_close_for_the_tiny_unet() -> None:
    torch.manual_seed(0)
    g = LesionGenerator(GeneratorConfig(widths=(4, 8, 8, 16, 16))).eval()
    images = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        whole = torch.sigmoid(g(images))
        tiled = torch.sigmoid(tiled_apply(g, images, tile=64, overlap=32))
        seams = torch.sigmoid(tiled_apply(g, images, tile=64, overlap=0))
    diff = (tiled - whole).abs()
    assert not torch.equal(tiled, whole)  # the U-Net's receptive field exceeds the overlap
    assert diff.mean() < 1e-4 and diff.max() < 2e-3, (diff.mean(), diff.max())  # maps vary with std ~0.09
    assert diff.max() < (seams - whole).abs().max()  # blending over an overlap beats hard seams


def test_tiled_apply_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="overlap < tile"):
        tiled_apply(nn.Identity(), torch.zeros(1, 3, 64, 64), tile=32, overlap=32)


def _pointwise_bundle(info: dict) -> Bundle:
    torch.manual_seed(1)
    return Bundle(nn.Conv2d(3, 4, kernel_size=1), None, PreprocessConfig(size=96), info, root=None)  # type: ignore[arg-type]


def test_predictor_takes_the_tile_from_the_bundle_and_can_force_the_whole_image() -> None:
    assert Predictor(_pointwise_bundle({"tile": 32})).tile == 32
    assert Predictor(_pointwise_bundle({"tile": 32})).overlap == 8
    assert Predictor(_pointwise_bundle({"tile": 32, "tile_overlap": 16})).overlap == 16
    assert Predictor(_pointwise_bundle({"tile": 32}), tile=0).tile == 0
    assert Predictor(_pointwise_bundle({})).tile == 0
    with pytest.raises(ValueError, match="overlap < tile"):
        Predictor(_pointwise_bundle({}), tile=32, overlap=40)


def test_predictor_tiled_maps_equal_whole_image_maps_for_a_pointwise_model() -> None:
    images = torch.rand(2, 3, 96, 96)
    whole, _ = Predictor(_pointwise_bundle({})).forward(images)
    tiled, _ = Predictor(_pointwise_bundle({"tile": 32})).forward(images)
    torch.testing.assert_close(tiled, whole, atol=1e-6, rtol=1e-5)
