"""Pooled pixel AUC over full-size IDRiD-like test sets stays in bounded memory and gives the analytic answer.

Each map is made on the fly in a child process (so the parent's memory does not count), fed to the accumulator
inside a circular field-of-view mask and discarded. Negatives score U(0, 0.8) and positives U(0.2, 1.0), so the
pooled ROC AUC is exactly 1 - 0.6**2 / 2 / 0.8**2 = 0.71875 and AP follows from the positive rate (see
:func:`analytic_ap`): the test checks correctness at scale, not only memory.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

H, W = 2848, 4288  # IDRiD fundus images are 4288x2848
PEAK_LIMIT_MB = 2048

CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    import numpy as np
    from drcollab.evaluation.metrics import StreamingBinaryCurve

    n_maps, h, w = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    yy, xx = np.ogrid[:h, :w]
    fov = (yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (0.48 * w) ** 2  # (H, W) bool, clipped at top and bottom
    curve = StreamingBinaryCurve()
    start = time.perf_counter()
    for seed in range(n_maps):
        rng = np.random.default_rng(seed)
        rate = 0.002 + 0.008 * rng.random()  # sparse lesions, a different rate per image
        targets = rng.random((h, w), dtype=np.float32) < rate  # (H, W) bool
        scores = rng.random((h, w), dtype=np.float32)
        scores *= np.float32(0.8)
        scores[targets] += np.float32(0.2)  # positives U(0.2, 1.0), negatives U(0, 0.8)
        curve.update(scores, targets, fov)
        del targets, scores
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    print(json.dumps({"peak_mb": peak_mb, "seconds": seconds, "n_pos": curve.n_pos, "n_neg": curve.n_neg,
                      "fov": int(fov.sum()), "roc_auc": curve.roc_auc(), "ap": curve.average_precision()}))
    """
)


def analytic_ap(pos_rate: float) -> float:
    """AP for positives ~ U(0.2, 1) and negatives ~ U(0, 0.8): integral of precision over recall."""
    t = np.linspace(0.2, 1.0, 200_001)
    recall = (1.0 - t) / 0.8
    fpr = np.clip((0.8 - t) / 0.8, 0.0, None)
    with np.errstate(invalid="ignore"):
        precision = pos_rate * recall / (pos_rate * recall + (1 - pos_rate) * fpr)
    precision[-1] = 1.0  # limit at t -> 1 (0 / 0 at the end point)
    return float(np.trapezoid(precision, t) / 0.8)


def run_child(n_maps: int) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(n_maps), str(H), str(W)], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def check(out: dict, n_maps: int) -> None:
    assert out["n_pos"] + out["n_neg"] == n_maps * out["fov"]
    assert out["peak_mb"] < PEAK_LIMIT_MB, f"peak RSS {out['peak_mb']:.0f} MB over {n_maps} maps"
    assert out["roc_auc"] == pytest.approx(0.71875, abs=1e-3)
    rate = out["n_pos"] / (out["n_pos"] + out["n_neg"])
    assert out["ap"] == pytest.approx(analytic_ap(rate), abs=2e-3)


def test_pooled_auc_over_27_full_size_maps() -> None:
    """The IDRiD test split: 27 maps of 4288x2848 (289 M pixels inside the FOV) in about 5 s, well under 2 GB."""
    check(run_child(27), 27)


def test_analytic_ap_limits() -> None:
    # Half positives: precision is 1 for t >= 0.8 (recall 0..1/4), then falls; a rate near 1 gives AP near 1.
    assert 0.25 < analytic_ap(0.5) < 1.0
    assert analytic_ap(0.999) == pytest.approx(1.0, abs=1e-3)
    assert analytic_ap(1e-6) == pytest.approx(0.25, abs=1e-3)  # only the t >= 0.8 quarter of recall is clean
