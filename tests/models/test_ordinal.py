"""The cumulative-logit grade head: probabilities, ordered thresholds, a hand-worked case, gradients, checkpoints.

Its toy convergence test is in ``test_model_convergence.py``.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from drcollab.config import GraderConfig
from drcollab.losses import focal_loss
from drcollab.models import LesionGrader, load_model, save_model
from drcollab.models.ordinal import OrdinalHead


def one_feature_head(num_grades: int, cuts: list[float]) -> OrdinalHead:
    """A head on one feature with w = 1 (so s is the input) and the given raw threshold parameters."""
    head = OrdinalHead(1, num_grades)
    with torch.no_grad():
        head.score.weight.fill_(1.0)
        head.cuts.copy_(torch.tensor(cuts))
    return head


@pytest.mark.parametrize("num_grades", [2, 3, 5])
def test_probabilities_are_non_negative_and_sum_to_one(num_grades: int) -> None:
    torch.manual_seed(0)
    head = OrdinalHead(16, num_grades)
    with torch.no_grad():
        head.cuts.copy_(torch.randn(num_grades - 1) * 3)
    logits = head(torch.randn(64, 16) * 20)  # scores far beyond the thresholds too
    p = logits.exp()
    assert logits.shape == (64, num_grades) and torch.isfinite(logits).all() and (p >= 0).all()
    torch.testing.assert_close(p.sum(1), torch.ones(64), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.softmax(logits, 1), p, atol=1e-6, rtol=0)  # softmax(log p) = p


@pytest.mark.parametrize("seed", range(5))
def test_thresholds_stay_strictly_ordered_for_any_parameter_values(seed: int) -> None:
    head = OrdinalHead(4, 5)
    with torch.no_grad():
        head.cuts.copy_(torch.randn(4, generator=torch.Generator().manual_seed(seed)) * 10)
        head.cuts[1 + seed % 3] = -50.0  # a gap parameter whose softplus underflows
    assert (head.thresholds().diff() > 0).all()


def test_p_at_least_k_grows_with_the_score() -> None:
    head = one_feature_head(5, [-1.0, 0.3, -2.0, 1.5])
    p_at_least = head(torch.linspace(-12, 12, 241)[:, None]).exp().flip(1).cumsum(1).flip(1)  # (S, G) P(y >= k)
    assert (p_at_least.diff(dim=0) >= -1e-6).all()
    torch.testing.assert_close(p_at_least[:, 1:], torch.sigmoid(torch.linspace(-12, 12, 241)[:, None]
                                                                 - head.thresholds()), atol=1e-5, rtol=0)


def test_hand_worked_probabilities() -> None:
    # s = 0.5, theta = (-1, 1): P(y > 0) = sigmoid(1.5) = 0.817574, P(y > 1) = sigmoid(-0.5) = 0.377541.
    head = one_feature_head(3, [-1.0, math.log(math.expm1(2.0 - 1e-3))])  # gap softplus(.) + 1e-3 = 2
    torch.testing.assert_close(head.thresholds(), torch.tensor([-1.0, 1.0]))
    p = head(torch.tensor([[0.5]])).exp()[0]
    torch.testing.assert_close(p, torch.tensor([1 - 0.817574, 0.817574 - 0.377541, 0.377541]), atol=1e-6, rtol=0)


def test_gradients_reach_the_score_weight_and_the_thresholds() -> None:
    torch.manual_seed(0)
    head = OrdinalHead(8, 5)
    focal_loss(head(torch.randn(16, 8) * 10), torch.randint(0, 5, (16,))).backward()
    for p in (head.score.weight, head.cuts):
        assert torch.isfinite(p.grad).all() and (p.grad != 0).all()


def test_ordinal_grader_checkpoint_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = LesionGrader(GraderConfig(backbone="test_resnet", mode="ori", head="ordinal", dme=True)).eval()
    with torch.no_grad():
        model.classifier.cuts.copy_(torch.tensor([-0.7, 0.2, -1.0, 2.0]))
    save_model(model, tmp_path / "c")
    loaded = load_model(tmp_path / "c")
    assert isinstance(loaded.classifier, OrdinalHead) and loaded.config.head == "ordinal"
    image = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(image).logits, model(image).logits, rtol=0, atol=0)
