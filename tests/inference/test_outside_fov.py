"""Lesion maps are 0 outside the field of view (G never learns there), unless asked for G's raw outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from drcollab.data.synthetic import generate_fundus
from drcollab.data.transforms import image_to_tensor
from drcollab.inference.predictor import Predictor


def _raw_and_predicted(bundle: Path, outside_fov: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    predictor = Predictor(bundle, outside_fov=outside_fov)
    pre = predictor.preprocess(generate_fundus(seed=4, size=96).image)
    raw = predictor.forward(image_to_tensor(pre.image)[None]).masks[0].numpy()  # (L, S, S)
    return raw, predictor.predict_preprocessed([pre])[0].lesion_probs, pre.fov


def test_lesion_maps_are_zero_outside_the_fov_and_gs_inside(tiny_bundle: Path) -> None:
    raw, maps, fov = _raw_and_predicted(tiny_bundle, "zero")
    assert (~fov).any() and (raw[:, ~fov] > 0).all()  # the untrained G says something out there
    assert (maps[:, ~fov] == 0).all()
    np.testing.assert_allclose(maps[:, fov], raw[:, fov], rtol=0, atol=1e-6)


def test_keep_gives_gs_raw_outputs_everywhere(tiny_bundle: Path) -> None:
    raw, maps, _ = _raw_and_predicted(tiny_bundle, "keep")
    np.testing.assert_allclose(maps, raw, rtol=0, atol=1e-6)


def test_an_unknown_choice_is_named(tiny_bundle: Path) -> None:
    with pytest.raises(ValueError, match="outside_fov 'blank'"):
        Predictor(tiny_bundle, outside_fov="blank")
