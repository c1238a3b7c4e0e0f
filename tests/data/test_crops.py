"""Lesion-centred crops: they contain their lesion at the configured rate, are seeded, and carry the FOV along."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from drcollab.data.crops import choose_centre, window
from drcollab.data.preprocess import Geometry, Preprocessed
from drcollab.data.records import Record
from drcollab.data.transforms import AugmentConfig
from drcollab.training.datasets import FundusDataset

S = 256


def _sparse_sample(seed: int = 0) -> Preprocessed:
    """A 256-px image with a disc FOV, 3 one-pixel MA, one 4x4 HE blob and no EX/SE: 0.03 % lesion pixels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:S, :S]
    fov = (yy - S / 2) ** 2 + (xx - S / 2) ** 2 < (S / 2 - 2) ** 2
    masks = np.zeros((4, S, S), dtype=bool)
    for y, x in ((60, 70), (190, 120), (128, 200)):
        masks[0, y, x] = True
    masks[1, 100:104, 40:44] = True
    image = rng.integers(0, 255, (S, S, 3), dtype=np.uint8)
    geometry = Geometry((0, 0, S, S), (S, S), S, (S / 2, S / 2), S / 2)
    return Preprocessed(image=image, masks=masks, fov=fov, geometry=geometry)


def _dataset(cfg: AugmentConfig) -> FundusDataset:
    pre = _sparse_sample()
    record = Record(name="a", image_path="a.png", mask_paths=("m",) * 4)
    return FundusDataset([record], lambda r: pre, cfg, labels="masks")


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_lesion_centred_crops_contain_their_lesion_at_the_configured_rate(share: float) -> None:
    cfg = AugmentConfig(crop=32, lesion_crops=share, crop_centre="fov")
    ds = _dataset(cfg)
    n = 400
    with_lesion = sum(bool(ds[(0, seed)]["masks"].sum() > 0) for seed in range(n))
    # A uniform crop of 32 px holds one of these lesions ~6 % of the time; lesion-centred ones always do.
    background_rate = 0.12
    assert share * n - 3 * np.sqrt(n * 0.25) <= with_lesion <= (share + (1 - share) * background_rate) * n + 15


def test_lesion_type_weights_choose_the_type() -> None:
    pre = _sparse_sample()
    rng = np.random.default_rng(0)
    only_he = AugmentConfig(crop=32, lesion_crops=1.0, lesion_crop_weights=(0.0, 1.0, 0.0, 0.0))
    chosen = {choose_centre(rng, (S, S), pre.masks, pre.fov, only_he)[2] for _ in range(50)}
    assert chosen == {1}
    equal = AugmentConfig(crop=32, lesion_crops=1.0)  # EX and SE are absent: never chosen
    counts = np.bincount([choose_centre(rng, (S, S), pre.masks, pre.fov, equal)[2] for _ in range(400)], minlength=4)
    assert counts[2] == counts[3] == 0 and 150 < counts[0] < 250


def test_fov_crops_are_centred_inside_the_fov() -> None:
    pre = _sparse_sample()
    rng = np.random.default_rng(1)
    cfg = AugmentConfig(crop=32, crop_centre="fov")
    for _ in range(200):
        y, x, lesion = choose_centre(rng, (S, S), pre.masks, pre.fov, cfg)
        assert lesion is None and pre.fov[y, x]


def test_crops_are_a_pure_function_of_the_seed_and_carry_the_fov() -> None:
    ds = _dataset(AugmentConfig(crop=48, lesion_crops=0.5, crop_centre="fov"))
    a, b, c = ds[(0, 7)], ds[(0, 7)], ds[(0, 8)]
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["masks"], b["masks"])
    assert not torch.equal(a["image"], c["image"])
    assert a["image"].shape == (3, 48, 48) and a["masks"].shape == (4, 48, 48) and a["fov"].shape == (1, 48, 48)
    assert a["fov"].dtype == torch.bool
    # Lesions never lie outside the FOV, after any rotation.
    for seed in range(50):
        item = ds[(0, seed)]
        assert not (item["masks"].bool() & ~item["fov"]).any()


def test_uncropped_items_carry_the_whole_fov() -> None:
    ds = _dataset(AugmentConfig(rotation=0, hflip=False, vflip=False))
    item = ds[(0, 3)]
    assert torch.equal(item["fov"][0], torch.from_numpy(_sparse_sample().fov))


def test_window_pads_where_it_leaves_the_array() -> None:
    a = np.arange(16, dtype=np.uint8).reshape(1, 4, 4)
    w = window(a, (0, 0), 4, 255)  # pixel (2, 2) of the window is (0, 0) of the array
    assert w.shape == (1, 4, 4)
    assert (w[0, :2] == 255).all() and (w[0, :, :2] == 255).all()
    assert w[0, 2, 2] == 0 and w[0, 3, 3] == 5
