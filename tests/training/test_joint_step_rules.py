"""Stage 2's gradient rules at one size (which network each loss reaches, what is detached, who steps)."""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch import nn
from training_helpers import reached

from drcollab.config import DiscriminatorConfig, GeneratorConfig, GraderConfig
from drcollab.models import LesionDiscriminator, LesionGenerator, LesionGrader
from drcollab.training.config import TrainConfig
from drcollab.training.steps import JointBatch, Nets, OneSize, disc_update, joint_losses, joint_step

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


def _batch(grades: list[int]) -> JointBatch:
    """X^I, X^P and D's real view of X^P (other images than X^P's own), all at 32 px."""
    g = torch.Generator().manual_seed(0)
    fov = torch.ones(1, 1, 32, 32, dtype=torch.bool)
    p = {"image": torch.rand(2, 3, 32, 32, generator=g) * 2 - 1, "fov": fov.expand(2, -1, -1, -1),
         "masks": (torch.rand(2, 4, 32, 32, generator=g) > 0.9).float()}
    n = len(grades)
    i = {"image": torch.rand(n, 3, 32, 32, generator=g) * 2 - 1, "fov": fov.expand(n, -1, -1, -1),
         "grade": torch.tensor(grades), "presence": torch.tensor([[0] * 4 if y == 0 else [-1] * 4 for y in grades])}
    real = {"image": torch.rand(2, 3, 32, 32, generator=g) * 2 - 1, "fov": fov.expand(2, -1, -1, -1)}
    return JointBatch(i, p, None, real)


@pytest.mark.parametrize("grade_to_generator", [True, False])
def test_each_loss_reaches_only_its_networks(grade_to_generator: bool) -> None:
    cfg = _cfg(grade_to_generator=grade_to_generator, pseudo_mask="refined", zero_absent=True)
    nets = _nets()
    b = _batch([0, 2])
    _, [real_masks] = disc_update(nets, [(b.real, b.image)], NO_AUTOCAST)
    losses, _ = joint_losses(nets, b, cfg, NO_AUTOCAST, OneSize, real_masks)
    through_masks = {"grader", "generator"} if grade_to_generator else {"grader"}
    assert reached(losses["focal"], nets) == through_masks
    assert reached(losses["bce_p"], nets) == {"generator"}
    assert reached(losses["bce_i"], nets) == {"generator"}  # pseudo masks detached: nothing reaches the grader
    assert {"generator"} <= reached(losses["adv"], nets) and "grader" not in reached(losses["adv"], nets)


@pytest.mark.parametrize("accumulation", [1, 2])
def test_d_steps_once_on_detached_inputs_and_g_step_never_moves_d(accumulation: int) -> None:
    nets = _nets()
    b = _batch([1, 2, 3, 4])
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
    joint_step(nets, b, _cfg(accumulation=accumulation), NO_AUTOCAST)
    assert seen["steps"] == 1 and seen["g_grads"] == []
    for after_d, now in zip(seen["d_after"], nets.discriminator.parameters(), strict=True):
        assert torch.equal(after_d, now)  # G's adversarial step leaves D's weights alone
    assert any(not torch.equal(a, b) for a, b in zip(g_before, nets.generator.parameters(), strict=True))
    d_calls = nets.discriminator.calls[:accumulation]  # D's own update comes first
    assert not any(needs_grad for _, needs_grad in d_calls)  # D learns from detached masks
    assert all(needs_grad for _, needs_grad in nets.discriminator.calls[accumulation:])  # G's term: through G


def test_d_judges_its_real_view_beside_gs_x_i_inputs_in_one_batch() -> None:
    """D's real branch is the real view (not the X^P batch G's BCE uses), its fake branch G's X^I inputs; both in
    every call, reals first."""
    nets = _nets()
    b = _batch([1, 2])
    joint_step(nets, b, _cfg(), NO_AUTOCAST)
    assert len(nets.discriminator.calls) == 2  # D's update, then G's adversarial term
    for images, _ in nets.discriminator.calls:
        assert torch.equal(images, torch.cat([b.real["image"], b.image["image"]]))


def test_without_d_nothing_needs_a_real_view_and_no_adversarial_term_is_logged() -> None:
    nets = _nets()
    nets.discriminator = nets.opt_discriminator = None
    b = _batch([0, 2])
    losses = joint_step(nets, JointBatch(b.image, b.pixel), _cfg(adversarial=False), NO_AUTOCAST)
    assert losses.keys() == {"focal", "bce_p", "bce_i"}


def test_loss_adv_weight_scales_gs_adversarial_term_in_the_stage_2_total() -> None:
    """``loss.adv_weight`` w: the total moves by (w - 1) x adv, every other term as at the paper's w = 1."""
    b = _batch([0, 2])
    totals, advs = {}, {}
    for w in (1.0, 0.1):
        nets = _nets()
        cfg = TrainConfig.model_validate({"data": SOURCES, "loss": {"adv_weight": w}})
        _, [real_masks] = disc_update(nets, [(b.real, b.image)], NO_AUTOCAST)
        losses, totals[w] = joint_losses(nets, b, cfg, NO_AUTOCAST, OneSize, real_masks)
        advs[w] = losses["adv"].item()
    assert advs[1.0] == pytest.approx(advs[0.1]) and advs[1.0] > 0.1
    assert (totals[1.0] - totals[0.1]).item() == pytest.approx(0.9 * advs[1.0], rel=1e-4)
