"""The referable rule: refer an eye with DR grade >= ``dr_min`` or DME risk >= ``dme_min`` (``ReferableConfig``).

From the model's two softmax outputs, ``P(referable) = 1 - P(DR < dr_min) * P(DME < dme_min)``: the eye is not
referable only when both are below their minimum, and the two heads' probabilities are taken as independent given
the image (each head is trained on its own label, nothing ties their joint distribution). Without a DME head the
rule falls back to DR alone, ``P(DR >= dr_min)``.
"""

from __future__ import annotations

import numpy as np

from drcollab.config import ReferableConfig


def referable_probability(
    grades: np.ndarray, dme: np.ndarray | None, config: ReferableConfig | None = None
) -> np.ndarray:
    """``(N,)`` P(referable) from DR probabilities ``(N, 5)`` and DME probabilities ``(N, 3)`` (None: DR only)."""
    config = config or ReferableConfig()
    grades = np.asarray(grades, dtype=np.float64)
    p_dr_below = grades[:, : config.dr_min].sum(axis=1)  # (N,)
    if dme is None:
        return 1.0 - p_dr_below
    p_dme_below = np.asarray(dme, dtype=np.float64)[:, : config.dme_min].sum(axis=1)  # (N,)
    return 1.0 - p_dr_below * p_dme_below


def is_referable(grade: np.ndarray, dme: np.ndarray | None, config: ReferableConfig | None = None) -> np.ndarray:
    """``(N,)`` bool truth of the rule from DR grades ``(N,)`` and DME risks ``(N,)`` (None, or -1 where unknown:
    DR decides alone)."""
    config = config or ReferableConfig()
    referable = np.asarray(grade) >= config.dr_min
    if dme is None:
        return referable
    return referable | (np.asarray(dme) >= config.dme_min)


def rule_text(config: ReferableConfig, uses_dme: bool) -> str:
    """The rule in words, e.g. ``grade ≥ 2 or DME ≥ 1`` (``grade ≥ 2`` for a model without a DME head)."""
    return f"grade ≥ {config.dr_min}" + (f" or DME ≥ {config.dme_min}" if uses_dme else "")
