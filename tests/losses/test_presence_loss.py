"""The loss on α itself: top-k pooling and BCE by hand, and it sets α's level where the grading loss cannot."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from drcollab.config import GraderConfig
from drcollab.losses.focal import focal_loss
from drcollab.losses.presence import attention_mask_loss, fov_cells, presence_loss, topk_pool
from drcollab.models import LesionGrader


def test_topk_pool_averages_the_top_share_of_the_fov_cells() -> None:
    alpha = torch.tensor([[[[0.9, 0.1], [0.5, 0.3]]]])  # (1, 1, 2, 2)
    inside = torch.tensor([[[[False, True], [True, True]]]])  # the 0.9 cell lies outside the FOV
    assert topk_pool(alpha, inside, 0.5).item() == pytest.approx((0.5 + 0.3) / 2)  # k = ceil(3 * 0.5) = 2
    assert topk_pool(alpha, inside, 0.01).item() == pytest.approx(0.5)  # at least one cell
    assert topk_pool(alpha, torch.zeros_like(inside), 0.25).item() == pytest.approx(0.9)  # no FOV: every cell


def test_fov_cells_are_the_cells_at_least_half_inside() -> None:
    fov = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    fov[..., :2, :2] = True
    fov[..., 2, 2] = True  # a quarter of cell (1, 1)
    assert fov_cells(fov, (2, 2)).flatten().tolist() == [True, False, False, False]


def test_presence_loss_by_hand_unknown_lesions_ignored() -> None:
    alpha = torch.tensor([[0.8, 0.2], [0.6, 0.4]]).view(1, 1, 2, 2).repeat(1, 3, 1, 1)  # (1, 3, 2, 2)
    alpha[0, 2] = 0.99  # lesion 3 is unknown: whatever it holds does not count
    fov = torch.ones(1, 1, 2, 2, dtype=torch.bool)
    presence = torch.tensor([[1, 0, -1]])
    pooled = (0.8 + 0.6) / 2  # top half of the four cells
    image_term = (-math.log(pooled) - math.log(1 - pooled)) / 2  # present -> 1, absent -> 0
    pixel_term = -sum(math.log(1 - a) for a in (0.8, 0.2, 0.6, 0.4)) / 4  # the absent lesion's cells -> 0
    assert presence_loss(alpha, presence, fov, 0.5).item() == pytest.approx(image_term + pixel_term, rel=1e-5)
    nothing_known = presence_loss(alpha.requires_grad_(), torch.full((1, 3), -1), fov, 0.5)
    assert nothing_known.item() == 0 and nothing_known.requires_grad


def test_attention_mask_loss_by_hand_max_pooled_truth_fov_cells_only() -> None:
    alpha = torch.tensor([[0.9, 0.3], [0.2, 0.5]]).view(1, 1, 2, 2)
    masks = torch.zeros(1, 1, 4, 4)
    masks[0, 0, 0, 1] = 1  # one pixel of the top-left cell: the whole cell is lesion on α's grid
    fov = torch.ones(1, 1, 4, 4, dtype=torch.bool)
    fov[..., 2:, 2:] = False  # the bottom-right cell is outside
    want = -(math.log(0.9) + math.log(0.7) + math.log(0.8)) / 3
    assert attention_mask_loss(alpha, masks, fov).item() == pytest.approx(want, rel=1e-5)


def test_attention_mask_loss_teaches_alpha_where_the_lesions_are() -> None:
    """A few steps on one image's masks: α rises on the lesion cells and falls elsewhere."""
    torch.manual_seed(0)
    grader = LesionGrader(GraderConfig(mode="attention", backbone="resnet18", att_channels=8)).train()
    opt = torch.optim.Adam(grader.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(1)
    x, g_masks = torch.rand(2, 3, 64, 64, generator=g) * 2 - 1, torch.rand(2, 4, 64, 64, generator=g) * 0.1
    truth = torch.zeros(2, 4, 64, 64)
    truth[..., 8:16, 40:48] = 1
    fov = torch.ones(2, 1, 64, 64, dtype=torch.bool)

    def gap() -> float:
        alpha = grader.attention_maps(x, g_masks).detach()  # (2, 4, 16, 16): the lesion is cells 2-3, 10-11
        return (alpha[..., 2:4, 10:12].mean() - alpha.mean()).item()

    before = gap()
    for _ in range(20):
        opt.zero_grad()
        attention_mask_loss(grader.attention_maps(x, g_masks), truth, fov).backward()
        opt.step()
    assert before < 0.05 and gap() > 0.3


def _alpha_after(steps: int, presence_code: int | None) -> tuple[float, float, float, float]:
    """Mean and top-k pooled α before and after ``steps`` Adam steps of focal (+ the presence loss)."""
    torch.manual_seed(0)
    grader = LesionGrader(GraderConfig(mode="attention", backbone="resnet18", att_channels=8)).train()
    opt = torch.optim.Adam(grader.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(1)
    x, masks = torch.rand(4, 3, 64, 64, generator=g) * 2 - 1, torch.rand(4, 4, 64, 64, generator=g) * 0.1
    grade, fov = torch.tensor([0, 1, 2, 3]), torch.ones(4, 1, 64, 64, dtype=torch.bool)
    presence = None if presence_code is None else torch.full((4, 4), presence_code)

    def measure() -> tuple[float, float]:
        alpha = grader(x, masks).attention.detach()
        return alpha.mean().item(), topk_pool(alpha, fov_cells(fov, alpha.shape[-2:]), 0.01).mean().item()

    before = measure()
    for _ in range(steps):
        out = grader(x, masks)
        loss = focal_loss(out.logits, grade)
        if presence is not None:
            loss = loss + presence_loss(out.attention, presence, fov, 0.01)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (*before, *measure())


class _Scaled(nn.Module):
    """The attention model with its output times a scalar parameter: the gradient on α's global level."""

    def __init__(self, attention: nn.Module) -> None:
        super().__init__()
        self.attention, self.scale = attention, nn.Parameter(torch.ones(()))

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        return self.scale * self.attention(*args)


def test_the_grading_loss_cannot_see_alpha_level_the_presence_loss_can() -> None:
    torch.manual_seed(0)
    grader = LesionGrader(GraderConfig(mode="attention", backbone="resnet18", att_channels=8)).train()
    grader.attention = _Scaled(grader.attention)
    g = torch.Generator().manual_seed(1)
    x, masks = torch.rand(4, 3, 64, 64, generator=g) * 2 - 1, torch.rand(4, 4, 64, 64, generator=g) * 0.1
    out = grader(x, masks)
    fov = torch.ones(4, 1, 64, 64, dtype=torch.bool)
    (focal,) = torch.autograd.grad(focal_loss(out.logits, torch.tensor([0, 1, 2, 3])), grader.attention.scale,
                                   retain_graph=True)
    (presence,) = torch.autograd.grad(presence_loss(out.attention, torch.zeros(4, 4), fov, 0.01),
                                      grader.attention.scale)
    assert abs(focal.item()) < 1e-4 < 0.1 < abs(presence.item())  # α ⊙ f_low -> conv -> BN: a uniform scale is lost


def test_a_few_steps_of_the_presence_loss_move_alpha_level_far_more_than_the_grading_loss() -> None:
    mean0, top0, mean_focal, top_focal = _alpha_after(5, None)
    _, _, mean_absent, _ = _alpha_after(5, 0)
    _, _, _, top_present = _alpha_after(5, 1)
    assert abs(mean_focal - mean0) < 0.05 and abs(top_focal - top0) < 0.1  # the grading loss alone: a drift
    assert mean_absent < min(mean0, mean_focal) - 0.1  # absent: every cell goes down
    assert top_present > max(top0, top_focal) + 0.1  # present: the top-k cells go up
