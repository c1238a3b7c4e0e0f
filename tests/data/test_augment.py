"""Colour jitter and zoom: the image changes, the masks and field of view follow only the geometry."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from drcollab.data.crops import window_side
from drcollab.data.preprocess import Geometry, Preprocessed
from drcollab.data.records import Record
from drcollab.data.transforms import BACKGROUND, AugmentConfig
from drcollab.training.datasets import FundusDataset

S = 96


def _sample() -> Preprocessed:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:S, :S]
    fov = (yy - S / 2) ** 2 + (xx - S / 2) ** 2 < (S / 2 - 4) ** 2
    image = np.where(fov[..., None], rng.integers(40, 200, (S, S, 3)), BACKGROUND).astype(np.uint8)
    masks = np.zeros((4, S, S), dtype=bool)
    masks[2, 30:40, 50:60] = True
    return Preprocessed(image=image, masks=masks, fov=fov, geometry=Geometry((0, 0, S, S), (S, S), S, (S / 2, S / 2),
                                                                              S / 2))


def _item(cfg: AugmentConfig, labels: str = "masks", seed: int = 3) -> dict:
    record = Record(name="a", image_path="a.png", mask_paths=("m",) * 4, grade=2)
    pre = _sample()
    return FundusDataset([record], lambda r: pre, cfg, labels=labels)[(0, seed)]


def test_colour_jitter_changes_the_image_not_the_masks_and_keeps_the_background() -> None:
    still = AugmentConfig(hflip=False, vflip=False, rotation=0)
    jitter = still.model_copy(update={"brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.05})
    plain, jittered = _item(still), _item(jitter)
    assert torch.equal(plain["masks"], jittered["masks"]) and torch.equal(plain["fov"], jittered["fov"])
    inside = plain["fov"].expand(3, -1, -1)
    assert (plain["image"][inside].float() - jittered["image"][inside].float()).abs().mean() > 3
    assert (jittered["image"][~inside] == BACKGROUND).all()  # the jitter does not reach outside the FOV


def test_colour_jitter_is_seeded() -> None:
    cfg = AugmentConfig(brightness=0.4, contrast=0.4)
    assert torch.equal(_item(cfg, "grade", 5)["image"], _item(cfg, "grade", 5)["image"])
    assert not torch.equal(_item(cfg, "grade", 5)["image"], _item(cfg, "grade", 6)["image"])


def test_zoom_moves_masks_with_the_image() -> None:
    base = AugmentConfig(hflip=False, vflip=False, rotation=0)
    zoomed = _item(base.model_copy(update={"scale": (1.5, 1.5)}))
    # a 1.5x zoom about the centre grows the 10x10 exudate to about 15x15 and the FOV with it
    assert 180 < int(zoomed["masks"][2].sum()) < 270
    assert zoomed["fov"].float().mean() > _item(base)["fov"].float().mean()


def test_zoomed_out_centred_crops_cut_a_window_that_still_covers_the_crop() -> None:
    cfg = AugmentConfig(crop=32, rotation=0, scale=(0.5, 1.0), crop_centre="fov")
    assert window_side(cfg) >= 64
    item = _item(cfg)
    assert item["image"].shape == (3, 32, 32) and item["masks"].shape == (4, 32, 32)


@pytest.mark.parametrize("scale", [(1.2, 0.8), (0.0, 1.0)])
def test_a_scale_range_that_is_not_min_max_is_refused(scale: tuple[float, float]) -> None:
    with pytest.raises(ValidationError, match="scale"):
        AugmentConfig(scale=scale)
