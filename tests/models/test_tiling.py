"""Tiled generator inference: exact for a 1x1-conv model, close for the tiny U-Net, wired into Predictor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from drcollab.config import GeneratorConfig, PreprocessConfig
from drcollab.inference.bundle import Bundle
from drcollab.inference.predictor import Predictor
from drcollab.models import LesionGenerator
from drcollab.models.tiling import tile_starts, tiled_apply


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
    whole = Predictor(_pointwise_bundle({})).forward(images).masks
    tiled = Predictor(_pointwise_bundle({"tile": 32})).forward(images).masks
    torch.testing.assert_close(tiled, whole, atol=1e-6, rtol=1e-5)


def _column_jumps(maps: torch.Tensor) -> torch.Tensor:
    """Mean absolute change between neighbouring columns, ``(W - 1,)``: a seam shows up as a spike."""
    return (maps[..., 1:] - maps[..., :-1]).abs().mean(dim=(0, 1, 2))


def test_tiles_at_gs_training_scale_leave_no_seams_and_match_the_whole_image_between_them() -> None:
    """G at its own resolution runs in tiles of its crop (1152-px images in 256-px tiles in the CPU recipe; here
    the same 4.5 tiles per side at a test size): no column jump at a tile boundary exceeds the whole image's
    own jumps there by more than a fraction of their typical size, and away from the boundaries the tiled maps
    equal the whole-image maps."""
    torch.manual_seed(0)
    g = LesionGenerator(GeneratorConfig(widths=(4, 8, 8, 16, 16))).eval()  # default init: maps that vary
    size, tile, overlap = 288, 64, 16
    images = torch.rand(1, 3, 32, 32)
    images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False) * 2 - 1  # smooth input
    with torch.no_grad():
        whole = torch.sigmoid(g(images))
        tiled = torch.sigmoid(tiled_apply(g, images, tile=tile, overlap=overlap))
        hard = torch.sigmoid(tiled_apply(g, images, tile=tile, overlap=0))
    starts = tile_starts(size, tile, overlap)
    edges = sorted({s for s in starts if s > 0} | {s + tile for s in starts if s + tile < size})
    typical = _column_jumps(whole).median()
    excess = (_column_jumps(tiled) - _column_jumps(whole))[[e - 1 for e in edges]]
    assert excess.max() < 0.5 * typical, (excess.max(), typical)
    hard_edges = [s for s in tile_starts(size, tile, 0) if s > 0]
    hard_excess = (_column_jumps(hard) - _column_jumps(whole))[[e - 1 for e in hard_edges]]
    assert hard_excess.max() > typical  # the check sees a hard seam (overlap 0)
    # Away from every tile boundary (further than the overlap), tiled = whole within tolerance.
    far = torch.ones(size, dtype=torch.bool)
    for e in edges:
        far[max(0, e - overlap) : e + overlap] = False
    inner = tiled[:, :, far][:, :, :, far]
    ref = whole[:, :, far][:, :, :, far]
    assert (inner - ref).abs().max() < 5e-3


@pytest.mark.parametrize("tiles_per_call", [1, 5, 100])
def test_windows_stacked_into_calls_give_the_same_maps_as_one_window_per_call(tiles_per_call: int) -> None:
    torch.manual_seed(0)
    g = LesionGenerator(GeneratorConfig(widths=(4, 8, 8, 8, 8))).eval()
    images = torch.randn(2, 3, 96, 80)  # two images: each call holds whole windows of both
    calls = []

    def counted(x: torch.Tensor) -> torch.Tensor:
        calls.append(len(x))
        return g(x)

    with torch.inference_mode():
        one = tiled_apply(g, images, 32, 8, tiles_per_call=1)
        stacked = tiled_apply(counted, images, 32, 8, tiles_per_call=tiles_per_call)
    torch.testing.assert_close(stacked, one, rtol=0, atol=1e-5)
    windows = len(tile_starts(96, 32, 8)) * len(tile_starts(80, 32, 8))
    assert sum(calls) == 2 * windows and max(calls) == min(max(tiles_per_call // 2, 1) * 2, 2 * windows)
