"""Stage 2's gradient rules (which network each loss reaches, what is detached, who steps) and grade-matched D."""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch import nn
from training_helpers import reached

from drcollab.config import DiscriminatorConfig, GeneratorConfig, GraderConfig
from drcollab.models import LesionDiscriminator, LesionGenerator, LesionGrader
from drcollab.training.config import TrainConfig
from drcollab.training.steps import Nets, _joint_losses, joint_step

NO_AUTOCAST = contextlib.nullcontext
SOURCES = {"pixel": [{"format": "generic", "root": "unused"}], "image": [{"format": "generic", "root": "unused"}]}


class Recorder(nn.Module):
    """D, recording each call's images and whether its masks carry a gradient."""

    def __init__(self, d: nn.Module) -> None:
        super().__init__()
        self.d, self.calls = d, []

    def forward(self, image: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        self.calls.append((image.detach().clone(), masks.requires_grad))
        return self.d(image, masks)


def _cfg(**joint: object) -> TrainConfig:
    return TrainConfig.model_validate({"data": SOURCES, "joint": joint})


def _nets() -> Nets:
    torch.manual_seed(0)
    g = LesionGenerator(GeneratorConfig(widths=(4, 8, 8, 16, 16)))
    c = LesionGrader(GraderConfig(mode="attention", backbone="resnet18", att_channels=8))
    d = Recorder(LesionDiscriminator(DiscriminatorConfig(widths=(4, 8, 8, 16, 16))))
    opts = [torch.optim.Adam(n.parameters(), lr=1e-3) for n in (g, c, d)]
    return Nets(g, c, d, *opts)


def _batches(grades: list[int]) -> tuple[dict, dict]:
    g = torch.Generator().manual_seed(0)
    fov = torch.ones(1, 1, 32, 32, dtype=torch.bool)
    p = {"image": torch.rand(2, 3, 32, 32, generator=g) * 2 - 1, "fov": fov.expand(2, -1, -1, -1),
         "masks": (torch.rand(2, 4, 32, 32, generator=g) > 0.9).float()}
    n = len(grades)
    i = {"image": torch.rand(n, 3, 32, 32, generator=g) * 2 - 1, "fov": fov.expand(n, -1, -1, -1),
         "grade": torch.tensor(grades), "presence": torch.tensor([[0] * 4 if y == 0 else [-1] * 4 for y in grades])}
    return p, i


@pytest.mark.parametrize("grade_to_generator", [True, False])
def test_each_loss_reaches_only_its_networks(grade_to_generator: bool) -> None:
    cfg = _cfg(grade_to_generator=grade_to_generator, presence_weight=1.0, pseudo_mask="refined", zero_absent=True)
    nets = _nets()
    p, i = _batches([0, 2])
    losses, _ = _joint_losses(nets, p, i, cfg, NO_AUTOCAST, use_semi=True, update_disc=False)
    through_masks = {"grader", "generator"} if grade_to_generator else {"grader"}
    assert reached(losses["focal"], nets) == through_masks
    assert reached(losses["presence"], nets) == through_masks  # a loss on the grader's alpha, like the focal loss
    assert reached(losses["bce_p"], nets) == {"generator"}
    assert reached(losses["bce_i"], nets) == {"generator"}  # pseudo masks detached: nothing reaches the grader
    assert {"generator"} <= reached(losses["adv"], nets) and "grader" not in reached(losses["adv"], nets)


def test_alpha_on_xp_reaches_the_grader_only_and_sees_gs_masks_of_xp() -> None:
    cfg = _cfg(alpha_mask_weight=1.0)
    nets = _nets()
    p, i = _batches([1, 2])
    seen = []
    grader_attention = nets.grader.attention_maps
    nets.grader.attention_maps = lambda x, m: seen.append((x, m.requires_grad)) or grader_attention(x, m)
    losses, _ = _joint_losses(nets, p, i, cfg, NO_AUTOCAST, use_semi=True, update_disc=False)
    assert reached(losses["alpha_p"], nets) == {"grader"}
    assert len(seen) == 1 and torch.equal(seen[0][0], p["image"]) and not seen[0][1]
    assert "alpha_p" not in _joint_losses(nets, p, i, _cfg(), NO_AUTOCAST, use_semi=True, update_disc=False)[0]


@pytest.mark.parametrize("accumulation", [1, 2])
def test_d_steps_once_on_detached_inputs_and_g_step_never_moves_d(accumulation: int) -> None:
    nets = _nets()
    p, i = _batches([1, 2, 3, 4])
    seen: dict[str, object] = {"steps": 0}
    d_step = nets.opt_discriminator.step

    def recorded_step(*args: object, **kwargs: object) -> None:
        seen["steps"] += 1
        # D's backward wrote nothing into G or the grader: its update cannot move them.
        seen["g_grads"] = [q.grad for k in ("generator", "grader") for q in getattr(nets, k).parameters()
                           if q.grad is not None and q.grad.abs().sum() > 0]
        d_step(*args, **kwargs)
        seen["d_after"] = [q.detach().clone() for q in nets.discriminator.parameters()]

    nets.opt_discriminator.step = recorded_step
    g_before = [q.detach().clone() for q in nets.generator.parameters()]
    joint_step(nets, p, i, _cfg(accumulation=accumulation), NO_AUTOCAST, use_semi=True)
    assert seen["steps"] == 1 and seen["g_grads"] == []
    for after_d, now in zip(seen["d_after"], nets.discriminator.parameters(), strict=True):
        assert torch.equal(after_d, now)  # G's adversarial step leaves D's weights alone
    assert any(not torch.equal(a, b) for a, b in zip(g_before, nets.generator.parameters(), strict=True))
    d_calls = nets.discriminator.calls[:accumulation]  # D's own update comes first
    assert not any(needs_grad for _, needs_grad in d_calls)  # D learns from detached masks


def _fake_rows(nets: Nets, p: dict, i: dict) -> list[list[int]]:
    """Per D call, which X^I images (by index) it saw after its X^P images."""
    out = []
    for images, _ in nets.discriminator.calls:
        n_p = sum(any(torch.equal(row, x) for x in p["image"]) for row in images)
        out.append([k for row in images[n_p:] for k, x in enumerate(i["image"]) if torch.equal(row, x)])
    return out


@pytest.mark.parametrize("accumulation", [1, 2])
def test_grade_matched_d_never_sees_a_healthy_fake(accumulation: int) -> None:
    p, i = _batches([0, 2, 0, 3])
    nets = _nets()
    joint_step(nets, p, i, _cfg(disc_match="grade", accumulation=accumulation), NO_AUTOCAST, use_semi=True)
    seen = _fake_rows(nets, p, i)
    assert seen and all(set(rows) <= {1, 3} and rows for rows in seen)
    assert sorted(k for rows in seen[:accumulation] for k in rows) == [1, 3]  # D's update saw every grade >= 1 fake
    paper = _nets()
    joint_step(paper, p, i, _cfg(accumulation=accumulation), NO_AUTOCAST, use_semi=True)
    assert any(0 in rows for rows in _fake_rows(paper, p, i))  # the paper's D does see healthy eyes


def test_disc_min_grade_keeps_only_fakes_with_as_much_lesion_as_xp() -> None:
    """``joint.disc_min_grade: 3``: D's fakes (its update and G's adversarial term) are the grade 3-4 images only."""
    p, i = _batches([2, 3, 1, 4])
    nets = _nets()
    joint_step(nets, p, i, _cfg(disc_match="grade", disc_min_grade=3), NO_AUTOCAST, use_semi=True)
    seen = _fake_rows(nets, p, i)
    assert seen and all(rows == [1, 3] for rows in seen)


def test_a_batch_without_a_fake_leaves_d_real_images_and_g_no_adversarial_term() -> None:
    p, i = _batches([0, 0])
    nets = _nets()
    losses = joint_step(nets, p, i, _cfg(disc_match="grade"), NO_AUTOCAST, use_semi=True)
    assert losses["adv"] == 0 and losses["disc"] > 0
    assert all(len(images) == len(p["image"]) for images, _ in nets.discriminator.calls)
