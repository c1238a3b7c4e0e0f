"""Stage 2's pseudo masks: the paper's up-sampled alpha, refined (no dilation), zero where ruled out, labels only."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from drcollab.constants import LESIONS
from drcollab.data.pooling import pool_masks
from drcollab.data.presence import lesion_presence
from drcollab.data.records import Record
from drcollab.training.config import JointConfig
from drcollab.training.pseudo import pseudo_masks, pseudo_targets, refined_masks


def test_pseudo_masks_upsample_and_detach():
    alpha = torch.full((1, 2, 2, 2), 0.5, requires_grad=True)  # (B, L, h, w) on f_low's grid
    alpha.data[0, 0, 0, 0] = 1.0
    masks = torch.zeros(1, 2, 8, 8)
    soft = pseudo_masks(alpha, masks)
    assert soft.shape == (1, 2, 8, 8) and not soft.requires_grad
    assert torch.allclose(soft[0, 1], torch.full((8, 8), 0.5))  # bilinear up-sampling of a constant map
    assert soft[0, 0, 0, 0] == 1.0 and soft[0, 0, 7, 7] == 0.5


def _joint(**values: object) -> JointConfig:
    return JointConfig(**values)


def _one_pixel_lesion() -> tuple[torch.Tensor, torch.Tensor]:
    """alpha high everywhere on a 4x4 grid; G marks one pixel of a 16x16 image for every lesion."""
    alpha = torch.full((1, 4, 4, 4), 0.9)
    masks = torch.full((1, 4, 16, 16), 0.01)
    masks[..., 7, 9] = 0.99
    return alpha, masks


def test_refined_targets_are_not_dilated() -> None:
    alpha, masks = _one_pixel_lesion()
    fov = torch.ones(1, 1, 16, 16, dtype=torch.bool)
    target, weight = pseudo_targets(alpha, masks, fov, None, _joint(pseudo_mask="refined"))
    assert target.sum(dim=(-2, -1)).tolist() == [[1.0] * 4] and target[0, :, 7, 9].eq(1).all()
    # The paper's maps, built from the same G through the grader's pooling, mark far more than the lesion.
    f_low_alpha = pool_masks(masks, (4, 4))  # what alpha can at best be on f_low's grid
    assert (pseudo_masks(f_low_alpha, masks) >= 0.5).sum() > 4 * 8
    assert weight.shape == (1, 4, 16, 16) and not target.requires_grad and not weight.requires_grad


def test_refined_weights_pixels_where_alpha_and_g_disagree_less() -> None:
    alpha = torch.tensor([0.9, 0.1, 0.9, 0.1]).view(1, 4, 1, 1)  # per lesion: agrees / rejects / marks / agrees
    masks = torch.tensor([0.95, 0.95, 0.05, 0.05]).view(1, 4, 1, 1)
    target, confidence = refined_masks(alpha, masks)
    assert target.flatten().tolist() == [1.0, 0.0, 0.0, 0.0]  # a lesion pixel needs both G and alpha
    c = confidence.flatten()
    assert c[0] > 0.8 and c[3] > 0.8 and c[1] < 0.2 and c[2] < 0.2


@pytest.mark.parametrize("mode", ["attention", "refined"])
def test_pseudo_masks_of_lesions_the_labels_rule_out_are_zero(mode: str) -> None:
    """A grade-0 image's pseudo masks are all zero and a DME-0 image's EX mask is zero, at full weight."""
    records = [Record(name="healthy", image_path=Path("a.jpg"), grade=0),
               Record(name="dme0", image_path=Path("b.jpg"), grade=3, dme=0)]
    presence = torch.tensor([lesion_presence(r) for r in records])  # (2, L)
    alpha, masks = torch.full((2, 4, 4, 4), 0.9), torch.full((2, 4, 16, 16), 0.9)
    fov = torch.zeros(2, 1, 16, 16, dtype=torch.bool)
    fov[..., 2:14, 2:14] = True
    target, weight = pseudo_targets(alpha, masks, fov, presence, _joint(pseudo_mask=mode, zero_absent=True))
    assert target[0].eq(0).all()
    ex = LESIONS.index("EX")
    assert target[1, ex].eq(0).all() and target[1, [i for i in range(4) if i != ex]].gt(0.5).all()
    weight = torch.broadcast_to(weight, target.shape)
    assert torch.equal(weight[0], fov[0].float().expand(4, -1, -1))  # ruled out: full weight inside the FOV
    assert weight[:, :, 0].eq(0).all()  # nothing outside the FOV counts
    paper, _ = pseudo_targets(alpha, masks, fov, presence, _joint(pseudo_mask=mode))
    assert paper[0].gt(0.5).all()  # without zero_absent the labels are not used


def test_labels_mode_teaches_only_the_lesions_the_labels_rule_out() -> None:
    """``pseudo_mask: labels``: target 0 at full weight (inside the FOV) where the labels say absent, no weight
    anywhere else, whatever alpha and G say."""
    records = [Record(name="healthy", image_path=Path("a.jpg"), grade=0),
               Record(name="dme0", image_path=Path("b.jpg"), grade=3, dme=0),
               Record(name="unlabelled", image_path=Path("c.jpg"))]
    presence = torch.tensor([lesion_presence(r) for r in records])  # (3, L)
    alpha, masks = torch.full((3, 4, 4, 4), 0.9), torch.full((3, 4, 16, 16), 0.9)
    fov = torch.zeros(3, 1, 16, 16, dtype=torch.bool)
    fov[..., 2:14, 2:14] = True
    target, weight = pseudo_targets(alpha, masks, fov, presence, _joint(pseudo_mask="labels"))
    assert target.shape == weight.shape == (3, 4, 16, 16) and target.eq(0).all()
    assert torch.equal(weight[0], fov[0].float().expand(4, -1, -1))
    ex = LESIONS.index("EX")
    assert torch.equal(weight[1, ex], fov[1, 0].float())
    assert weight[1, [i for i in range(4) if i != ex]].eq(0).all() and weight[2].eq(0).all()
    with pytest.raises(ValueError, match="presence"):
        pseudo_targets(alpha, masks, fov, None, _joint(pseudo_mask="labels"))


def test_zero_absent_without_presence_codes_says_what_is_missing() -> None:
    alpha, masks = _one_pixel_lesion()
    with pytest.raises(ValueError, match="presence"):
        pseudo_targets(alpha, masks, torch.ones(1, 1, 16, 16), None, _joint(zero_absent=True))
