"""D judges masks, not samplers: in stage 2 its real images (views of X^P) and its fake ones (G's X^I inputs) are
cut by one sampler, at one size and at two.

Every image of the set below is the same picture, pixel-labelled and graded, so X^P and X^I hold the same images and
only the way a batch is cut from them can differ. The picture has a lesion-dense region (white squares, marked as
EX, on the right of the field of view) and horizontal stripes everywhere else, so two statistics of the images D
sees tell the samplers apart: the share of lesion pixels (a lesion-centred crop holds far more) and how much the
image changes along its rows (zero for stripes that were only flipped, large once they are rotated). A short
training run records every image D is fed, its real rows (the first ``pixel_batch_size`` of each call) and its
fake rows apart.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from training_helpers import tiny_config

from drcollab.models import LesionDiscriminator
from drcollab.training.trainer import run_training

SIDE = 128
N_IMAGES = 16
PIXEL_BATCH = 4


def _picture() -> tuple[np.ndarray, np.ndarray]:
    """A fundus-like disc of horizontal stripes with white 3x3 lesions in one small region, and their mask."""
    yy, xx = np.mgrid[:SIDE, :SIDE]
    disc = (yy - SIDE / 2 + 0.5) ** 2 + (xx - SIDE / 2 + 0.5) ** 2 < (SIDE / 2 - 2) ** 2
    image = np.zeros((SIDE, SIDE, 3), np.uint8)
    stripes = np.where((yy // 4) % 2 == 0, 1, 0)[..., None] * np.array([60, 40, 30]) + np.array([110, 70, 50])
    image[disc] = stripes[disc]
    lesions = np.zeros((SIDE, SIDE), bool)
    for y in range(44, 84, 6):
        for x in range(92, 116, 6):
            lesions[y : y + 3, x : x + 3] = True
    lesions &= disc
    image[lesions] = 255
    return image, lesions


@pytest.fixture(scope="module")
def same_picture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``N_IMAGES`` copies of :func:`_picture` in the generic layout, each with a grade, a DME risk and masks."""
    root = tmp_path_factory.mktemp("same_picture")
    image, lesions = _picture()
    (root / "images").mkdir()
    (root / "masks" / "EX").mkdir(parents=True)
    rows = []
    for k in range(N_IMAGES):
        Image.fromarray(image).save(root / "images" / f"p{k:02d}.png")
        Image.fromarray(lesions.astype(np.uint8) * 255).save(root / "masks" / "EX" / f"p{k:02d}.png")
        rows.append((f"images/p{k:02d}.png", 3, 1))
    with (root / "labels.csv").open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(("path", "grade", "dme"))
        writer.writerows(rows)
    return root


def _statistics(images: torch.Tensor) -> tuple[float, float]:
    """Mean share of lesion pixels (white) and mean share of the change that runs along rows, over ``images``
    ``(N, 3, c, c)`` in [-1, 1]."""
    white = (images.min(dim=1).values > 0.6).float().mean(dim=(-2, -1))  # (N,)
    red = images[:, 0]
    along = (red[:, :, 1:] - red[:, :, :-1]).abs().mean(dim=(-2, -1))
    across = (red[:, 1:, :] - red[:, :-1, :]).abs().mean(dim=(-2, -1))
    return float(white.mean()), float((along / (along + across).clamp_min(1e-6)).mean())


def _d_inputs(root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, two_sizes: bool
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Every image D was fed in a short stage 2: (real rows, fake rows)."""
    calls = []
    forward = LesionDiscriminator.forward

    def recording(self, image: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        calls.append(image.detach().float().clone())
        return forward(self, image, masks)

    monkeypatch.setattr(LesionDiscriminator, "forward", recording)
    # Two sizes: the grader at 64 px, G at 128 px on 32-px crops, lesion-centred for its X^P BCE (G's own recipe).
    data = {"preprocess": {"size": SIDE // 2 if two_sizes else SIDE, "normalise": False},
            "seg_size": SIDE if two_sizes else None}
    seg = {"epochs": 1, "max_steps_per_epoch": 1, "augment": {"crop": 32, "lesion_crops": 0.5, "crop_centre": "fov"}}
    cfg = tiny_config(root, tmp_path / "cache", data=data, seg_pretrain=seg, grade_pretrain={"epochs": 0},
                      joint={"epochs": 2, "batch_size": 4, "pixel_batch_size": PIXEL_BATCH, "max_steps_per_epoch": 15,
                             "grade_to_generator": not two_sizes, "semi": False},
                      runtime={"validate_every": 100})
    run_training(cfg, tmp_path / "run")
    assert calls
    real = torch.cat([c[:PIXEL_BATCH] for c in calls])
    fake = torch.cat([c[PIXEL_BATCH:] for c in calls])
    assert real.shape[-1] == fake.shape[-1] == (32 if two_sizes else SIDE)
    return real, fake


@pytest.mark.parametrize("two_sizes", [False, True], ids=["one size", "two sizes"])
def test_ds_real_and_fake_images_are_cut_alike(same_picture: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               two_sizes: bool) -> None:
    real, fake = _d_inputs(same_picture, tmp_path, monkeypatch, two_sizes)
    lesion_real, rows_real = _statistics(real)
    lesion_fake, rows_fake = _statistics(fake)
    assert lesion_fake > 0.005  # the fakes do see the lesion region, so the comparison can fail
    assert abs(lesion_real - lesion_fake) < 0.5 * max(lesion_real, lesion_fake), (lesion_real, lesion_fake)
    assert abs(rows_real - rows_fake) < 0.2, (rows_real, rows_fake)
