"""Learning-rate schedules: warm-up then cosine, a pure function of the step (so resume continues it exactly)."""

from __future__ import annotations

import pytest

from drcollab.training.config import StageConfig
from drcollab.training.schedule import lr_at


def test_constant_is_the_papers_rate() -> None:
    cfg = StageConfig(epochs=1, batch_size=1)
    assert [lr_at(cfg, k, 100) for k in (0, 50, 99)] == [2e-4] * 3


def test_warmup_then_cosine_to_the_floor() -> None:
    cfg = StageConfig(epochs=1, batch_size=1, lr=1e-3, schedule="cosine", warmup_steps=10, min_lr_ratio=0.1)
    assert lr_at(cfg, 0, 110) == pytest.approx(1e-4)
    assert lr_at(cfg, 9, 110) == pytest.approx(1e-3)
    assert lr_at(cfg, 10, 110) == pytest.approx(1e-3)
    mid = 10 + (110 - 10 - 1) / 2
    assert lr_at(cfg, int(mid), 110) == pytest.approx(1e-4 + 0.9e-3 * 0.5, rel=0.05)
    assert lr_at(cfg, 109, 110) == pytest.approx(1e-4)
    rates = [lr_at(cfg, k, 110) for k in range(10, 110)]
    assert all(a >= b for a, b in zip(rates, rates[1:], strict=False))
