"""Lesion statistics: hand-worked areas and counts, blobs counted by their Euler number, invariance under flips and
quarter turns."""

from __future__ import annotations

import math

import pytest
import torch

from drcollab.models.lesion_stats import blob_corners, lesion_statistics, num_stats, region_weights


def _region_sizes(side: int) -> tuple[int, int]:
    """Pixels of the centre disc and of one quadrant of the ring, counted one by one (even ``side``)."""
    radius, centre, quadrant = side / 2, 0, 0
    for i in range(side):
        for j in range(side):
            r = math.hypot(i + 0.5 - radius, j + 0.5 - radius)
            centre += r < radius / 3
            quadrant += radius / 3 <= r < radius and i < radius and j < radius
    return centre, quadrant


def test_two_blobs_in_a_quadrant_and_one_in_the_centre() -> None:
    m = torch.zeros(1, 4, 64, 64)
    hx = m[0, 1]  # haemorrhages; the other lesions stay empty
    hx[31:33, 31:33] = 0.9  # centre: a 2x2 blob
    hx[10, 10] = 0.8  # top-left quadrant: a one-pixel blob ...
    hx[15:18, 7:10] = 0.6
    hx[16, 8] = 1.0  # ... and a 3x3 blob, brighter in its middle
    hx[20, 4] = 0.4  # below 0.5: area, but no blob
    n_centre, n_quadrant = _region_sizes(64)
    area_c, area_q = 4 * 0.9 / n_centre, (0.8 + 8 * 0.6 + 1.0 + 0.4) / n_quadrant
    none = math.log10(1e-4)
    expected = [[none] * 5 + [0.0] * 5 for _ in range(4)]
    expected[1] = [math.log10(area_c + 1e-4), math.log10(area_q + 1e-4), none, none, none,
                   math.log(2), math.log(3), 0.0, 0.0, 0.0]
    stats = lesion_statistics(m)
    assert stats.shape == (1, num_stats(4)) == (1, 40)
    torch.testing.assert_close(stats, torch.tensor(expected).reshape(1, 40), atol=1e-6, rtol=1e-5)


def _square(side: int, hole: bool = False) -> torch.Tensor:
    g = torch.Generator().manual_seed(side)
    m = torch.zeros(1, 1, 16, 16)
    m[0, 0, 2 : 2 + side, 2 : 2 + side] = 0.6 + 0.4 * torch.rand(side, side, generator=g)  # bumpy: many maxima
    if hole:
        m[0, 0, 2 + side // 2, 2 + side // 2] = 0.1
    return m


def _pixels(*yx: tuple[int, int]) -> torch.Tensor:
    m = torch.zeros(1, 1, 16, 16)
    for y, x in yx:
        m[0, 0, y, x] = 0.9
    return m


@pytest.mark.parametrize(("masks", "count"), [
    (_pixels((5, 5)), 1), (_pixels((5, 5), (6, 6)), 1), (_pixels((5, 5), (7, 7)), 2), (_pixels((0, 0), (15, 15)), 2),
    (_square(8), 1), (_square(3, hole=True), 0),  # a blob with a hole counts 1 - 1
])
def test_blobs_are_counted_by_their_euler_number(masks: torch.Tensor, count: int) -> None:
    assert float(blob_corners(masks).sum()) == count


@pytest.mark.parametrize("side", [64, 63])
@pytest.mark.parametrize("corners", [False, True])
def test_regions_cover_the_inscribed_disc_once(side: int, corners: bool) -> None:
    w = region_weights(side, side, corners=corners)
    assert w.shape == (5, side + corners, side + corners)
    assert float(w.sum(0).max()) == 1.0  # nothing counts twice; a point on an axis is split in halves
    assert w[:, 0, 0].sum() == 0  # the frame's corners lie outside the disc


@pytest.mark.parametrize("side", [64, 63])
@pytest.mark.parametrize("name, turn", [
    ("hflip", lambda m: m.flip(-1)), ("vflip", lambda m: m.flip(-2)), ("rot90", lambda m: m.rot90(1, (-2, -1))),
    ("rot180", lambda m: m.rot90(2, (-2, -1))), ("rot270", lambda m: m.rot90(3, (-2, -1))),
    ("transpose", lambda m: m.transpose(-2, -1)),
])
def test_statistics_do_not_change_under_flips_and_quarter_turns(side: int, name: str, turn) -> None:  # noqa: ANN001
    g = torch.Generator().manual_seed(0)
    masks = torch.rand(2, 4, side, side, generator=g) ** 8  # sparse peaks, some above 0.5
    torch.testing.assert_close(lesion_statistics(turn(masks)), lesion_statistics(masks), atol=1e-5, rtol=0)
