"""Confidence intervals of a proportion: the Wilson score interval (Wilson, JASA 1927).

A sensitivity of 47 / 52 is a proportion estimated from few cases; its 95 % interval says how far the true value
may be from it. Wilson's interval keeps inside [0, 1] and stays honest at 0 / n and n / n, where the textbook
normal interval (p ± z sqrt(p (1 - p) / n)) collapses to a single point.

    centre = (p + z² / 2n) / (1 + z² / n)
    half   = z / (1 + z² / n) * sqrt(p (1 - p) / n + z² / 4n²)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054  # the 97.5th percentile of the standard normal: a two-sided 95 % interval


@dataclass(frozen=True)
class Proportion:
    """``k`` of ``n`` cases, the share ``k / n`` and its 95 % Wilson interval ``[low, high]``."""

    k: int
    n: int
    value: float
    low: float
    high: float

    def record(self) -> dict[str, float | int | list[float]]:
        """JSON-ready: ``{"value", "k", "n", "ci95"}``."""
        return {"value": self.value, "k": self.k, "n": self.n, "ci95": [self.low, self.high]}

    def text(self, digits: int = 3) -> str:
        """E.g. ``0.904 (95% Wilson CI 0.794-0.958; 47/52)``."""
        return (f"{self.value:.{digits}f} (95% Wilson CI {self.low:.{digits}f}-{self.high:.{digits}f}; "
                f"{self.k}/{self.n})")


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of ``k`` successes in ``n`` trials (two-sided, ``z`` = 1.96 for 95 %).

    Raises:
        ValueError: ``n`` < 1 or ``k`` outside 0..n.
    """
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"a proportion needs 0 <= k <= n and n >= 1, got k={k}, n={n}")
    p, z2 = k / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # The interval holds p by construction; at k = 0 or k = n rounding can put an end a hair past it (n = 10).
    return min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half))


def proportion(k: int, n: int) -> Proportion:
    """``k`` of ``n`` with its 95 % Wilson interval."""
    low, high = wilson_interval(k, n)
    return Proportion(int(k), int(n), k / n, low, high)
