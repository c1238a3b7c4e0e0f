"""The field of view reaches G's mask loss in stage 1a and stage 2: what lies outside it never counts."""

from __future__ import annotations

import contextlib
import copy

import pytest
import torch

from drcollab.config import GeneratorConfig, GraderConfig
from drcollab.models import LesionGenerator, LesionGrader
from drcollab.training import pseudo
from drcollab.training.config import TrainConfig
from drcollab.training.steps import JointBatch, Nets, joint_step, seg_step

NO_AUTOCAST = contextlib.nullcontext
SOURCES = {"pixel": [{"format": "generic", "root": "unused"}], "image": [{"format": "generic", "root": "unused"}]}


def _cfg(**sections: dict) -> TrainConfig:
    return TrainConfig.model_validate({"data": SOURCES, **sections})


def _batch(b: int, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    fov = torch.zeros(b, 1, 32, 32, dtype=torch.bool)
    fov[:, :, 4:28, 4:28] = True
    return {"image": torch.rand(b, 3, 32, 32, generator=g) * 2 - 1,
            "masks": (torch.rand(b, 4, 32, 32, generator=g) > 0.9).float() * fov, "fov": fov,
            "grade": torch.randint(0, 5, (b,), generator=g)}


def _outside_changed(batch: dict, key: str = "masks") -> dict:
    """The same batch with every target outside the FOV set to 1."""
    out = dict(batch)
    out[key] = torch.where(batch["fov"], batch[key], torch.ones_like(batch[key]))
    return out


def _seg_nets() -> Nets:
    torch.manual_seed(0)
    g = LesionGenerator(GeneratorConfig(widths=(4, 8, 8, 16, 16)))
    return Nets(generator=g, opt_generator=torch.optim.Adam(g.parameters(), lr=1e-3))


@pytest.mark.parametrize("mask_loss", ["bce", "bce_dice"])
def test_stage_1a_loss_and_update_ignore_targets_outside_the_fov(mask_loss: str) -> None:
    cfg = _cfg(loss={"mask_loss": mask_loss})
    batch = _batch(2, 0)
    a, b = _seg_nets(), _seg_nets()
    la = seg_step(a, batch, cfg, NO_AUTOCAST)["bce"]
    lb = seg_step(b, _outside_changed(batch), cfg, NO_AUTOCAST)["bce"]
    assert la == pytest.approx(lb, rel=1e-6)
    for pa, pb in zip(a.generator.parameters(), b.generator.parameters(), strict=True):
        torch.testing.assert_close(pa, pb)
    # Sanity: with the whole image as FOV the same change does move the loss, so the test can fail.
    whole = {"fov": torch.ones_like(batch["fov"])}
    lc = seg_step(_seg_nets(), batch | whole, cfg, NO_AUTOCAST)["bce"]
    ld = seg_step(_seg_nets(), _outside_changed(batch) | whole, cfg, NO_AUTOCAST)["bce"]
    assert abs(lc - ld) > 1e-3


def _joint_nets() -> Nets:
    torch.manual_seed(0)
    g = LesionGenerator(GeneratorConfig(widths=(4, 8, 8, 16, 16)))
    c = LesionGrader(GraderConfig(mode="attention", backbone="resnet18", att_channels=8))
    return Nets(generator=g, grader=c, opt_generator=torch.optim.Adam(g.parameters(), lr=1e-3),
                opt_grader=torch.optim.Adam(c.parameters(), lr=1e-3))


def test_stage_2_real_and_pseudo_mask_losses_ignore_targets_outside_the_fov(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _cfg(joint={"adversarial": False})
    p_batch, i_batch = _batch(2, 1), _batch(2, 2)
    fov_i = i_batch["fov"]
    pseudo_inside = (torch.rand(2, 4, 32, 32, generator=torch.Generator().manual_seed(3)) > 0.8).float()

    def run(outside: float, p: dict) -> dict[str, float]:
        target = torch.where(fov_i, pseudo_inside, torch.full_like(pseudo_inside, outside))
        monkeypatch.setattr(pseudo, "pseudo_masks", lambda *args, **kwargs: target)
        return joint_step(_joint_nets(), JointBatch(i_batch, p), cfg, NO_AUTOCAST)

    a = run(0.0, p_batch)
    b = run(1.0, _outside_changed(p_batch))
    assert a["bce_p"] == pytest.approx(b["bce_p"], rel=1e-6)
    assert a["bce_i"] == pytest.approx(b["bce_i"], rel=1e-6)
    # Sanity: the pseudo targets outside the FOV would matter if they counted.
    monkeypatch.setattr(pseudo, "pseudo_masks", lambda *args, **kwargs: torch.ones_like(pseudo_inside))
    whole = dict(i_batch, fov=torch.ones_like(fov_i))
    c = joint_step(_joint_nets(), JointBatch(whole, copy.deepcopy(p_batch)), cfg, NO_AUTOCAST)
    assert abs(c["bce_i"] - a["bce_i"]) > 1e-3


def test_with_mask_fov_off_every_pixel_counts_as_in_the_paper(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _cfg(loss={"mask_fov": False}, joint={"adversarial": False})
    batch = _batch(2, 0)
    la = seg_step(_seg_nets(), batch, cfg, NO_AUTOCAST)["bce"]
    lb = seg_step(_seg_nets(), _outside_changed(batch), cfg, NO_AUTOCAST)["bce"]
    assert abs(la - lb) > 1e-3
    # Stage 2: X^P's targets and the pseudo targets outside the FOV count too.
    p_batch, i_batch = _batch(2, 1), _batch(2, 2)
    inside = (torch.rand(2, 4, 32, 32, generator=torch.Generator().manual_seed(3)) > 0.8).float()

    def run(outside: float, p: dict) -> dict[str, float]:
        target = torch.where(i_batch["fov"], inside, torch.full_like(inside, outside))
        monkeypatch.setattr(pseudo, "pseudo_masks", lambda *args, **kwargs: target)
        return joint_step(_joint_nets(), JointBatch(i_batch, p), cfg, NO_AUTOCAST)

    a, b = run(0.0, p_batch), run(1.0, _outside_changed(p_batch))
    assert abs(a["bce_p"] - b["bce_p"]) > 1e-3
    assert abs(a["bce_i"] - b["bce_i"]) > 1e-3
