"""Cumulative-logit (proportional-odds, CORAL-style) DR grade head, ``grader.head = "ordinal"``.

One linear score ``s = w·f`` per image and G - 1 ordered thresholds ``theta_0 < ... < theta_{G-2}``:

    P(y > k) = sigmoid(s - theta_k),   P(y = k) = P(y > k-1) - P(y > k),   P(y > -1) = 1, P(y > G-1) = 0.

The head returns ``log P(y = k)``, shape ``(B, G)``, in the place of the softmax head's logits, so
``softmax(logits)`` gives the same probabilities and everything downstream (focal loss, argmax, referable rule,
ONNX export) is unchanged. Cross-entropy on these logits is the cumulative-link likelihood exactly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

MIN_GAP = 1e-3  # smallest distance between two thresholds, so they stay strictly ordered in float32 too


class OrdinalHead(nn.Module):
    """``forward(features (B, in_features)) -> log P(y = k) (B, num_grades)``.

    The thresholds are ``theta_0`` followed by cumulative ``softplus`` gaps (plus ``MIN_GAP``), so they are
    ordered for any parameter values. They start 1 apart and centred on 0, where a score near 0 gives every
    grade a similar probability.
    """

    def __init__(self, in_features: int, num_grades: int) -> None:
        super().__init__()
        self.score = nn.Linear(in_features, 1, bias=False)  # the thresholds play the bias's part
        gap = math.log(math.expm1(1.0 - MIN_GAP))  # softplus(gap) + MIN_GAP = 1
        self.cuts = nn.Parameter(torch.tensor([-(num_grades - 2) / 2] + [gap] * (num_grades - 2)))  # (G - 1,)

    def thresholds(self) -> torch.Tensor:
        """The ordered thresholds ``(G - 1,)``: theta_0 = cuts_0, theta_k = theta_{k-1} + softplus(cuts_k) + MIN_GAP."""
        cuts = self.cuts.float()
        return torch.cat([cuts[:1], cuts[:1] + (F.softplus(cuts[1:]) + MIN_GAP).cumsum(0)])

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        s = self.score(features).float()  # (B, 1), float32 even under autocast
        theta = self.thresholds()
        inf = theta.new_full((1,), math.inf)
        lower, upper = torch.cat([-inf, theta]), torch.cat([theta, inf])  # (G,) theta_{k-1}, theta_k
        # log(sigmoid(s - lower) - sigmoid(s - upper)) in log space, so a score far from both thresholds does
        # not round the class's probability to 0: sigmoid(a) - sigmoid(b) = sigmoid(a) sigmoid(-b) (1 - e^(b-a)).
        return F.logsigmoid(s - lower) + F.logsigmoid(upper - s) + torch.log(-torch.expm1(lower - upper))  # (B, G)
