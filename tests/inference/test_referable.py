"""The referable rule: DR >= dr_min or DME >= dme_min, its probability, the DR-only fallback, the bundle's rule."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from drcollab.config import ReferableConfig
from drcollab.errors import DataError
from drcollab.inference.bundle import load_bundle
from drcollab.inference.predictor import Predictor
from drcollab.inference.referable import is_referable, referable_probability, rule_text
from helpers import write_tiny_bundle

DR = np.array([[0.5, 0.3, 0.1, 0.05, 0.05],   # P(DR < 2) = 0.8
               [0.1, 0.1, 0.6, 0.1, 0.1]])    # P(DR < 2) = 0.2
DME = np.array([[0.5, 0.25, 0.25],             # P(DME < 1) = 0.5, P(DME < 2) = 0.75
                [0.9, 0.1, 0.0]])


def test_probability_is_one_minus_both_below_their_minimum() -> None:
    # 1 - 0.8 * 0.5 = 0.6 and 1 - 0.2 * 0.9 = 0.82
    np.testing.assert_allclose(referable_probability(DR, DME), [0.6, 0.82])
    # dr_min 3, dme_min 2: P(DR < 3) = 0.9 / 0.8, P(DME < 2) = 0.75 / 1.0 -> 1 - 0.675, 1 - 0.8
    np.testing.assert_allclose(referable_probability(DR, DME, ReferableConfig(dr_min=3, dme_min=2)), [0.325, 0.2])


def test_without_a_dme_head_dr_alone_decides() -> None:
    np.testing.assert_allclose(referable_probability(DR, None), [0.2, 0.8])  # P(DR >= 2), today's rule
    np.testing.assert_allclose(referable_probability(DR, None, ReferableConfig(dr_min=1)), [0.5, 0.9])


def test_the_truth_of_the_rule() -> None:
    grade, dme = np.array([0, 1, 2, 0, 4, 1]), np.array([0, 1, 0, 2, -1, -1])
    assert is_referable(grade, dme).tolist() == [False, True, True, True, True, False]  # -1: DME unknown
    assert is_referable(grade, None).tolist() == [False, False, True, False, True, False]
    assert is_referable(grade, dme, ReferableConfig(dr_min=3, dme_min=2)).tolist() == [False, False, False, True,
                                                                                        True, False]
    assert rule_text(ReferableConfig(), True) == "grade ≥ 2 or DME ≥ 1"
    assert rule_text(ReferableConfig(dr_min=3), False) == "grade ≥ 3"


def test_the_predictor_follows_the_bundles_rule(tmp_path: Path) -> None:
    bundle = write_tiny_bundle(tmp_path / "model", dme=True)
    info = json.loads((bundle / "bundle.json").read_text())
    (bundle / "bundle.json").write_text(json.dumps({**info, "referable": {"dr_min": 4, "dme_min": 2,
                                                                          "threshold": 0.1}}))
    predictor = Predictor(bundle)
    assert predictor.referable == ReferableConfig(dr_min=4, dme_min=2, threshold=0.1) and predictor.has_dme
    image = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    pred = predictor.predict([image])[0]
    expected = 1 - sum(pred.probabilities[:4]) * sum(pred.dme_probabilities[:2])
    assert pred.referable_probability == pytest.approx(expected, abs=1e-5)
    assert pred.referable == (pred.referable_probability >= 0.1)


def test_a_bundle_without_a_rule_gets_the_default_and_a_bad_rule_is_named(tmp_path: Path) -> None:
    bundle = write_tiny_bundle(tmp_path / "model")
    assert load_bundle(bundle).referable == ReferableConfig()
    info = json.loads((bundle / "bundle.json").read_text())
    (bundle / "bundle.json").write_text(json.dumps({**info, "referable": {"dr_min": 7}}))
    with pytest.raises(DataError, match=r"bundle.json.*referable.dr_min: .*4 \(got 7\); fix or re-export"):
        load_bundle(bundle)
