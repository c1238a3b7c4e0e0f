"""Test-time flips: the mean of the flipped copies' probabilities, the bundle's default, ``predict --tta``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from predict_inputs import wide_fundus
from typer.testing import CliRunner

from drcollab.cli import app
from drcollab.errors import ConfigError, DataError
from drcollab.inference.engine import load_engine
from drcollab.inference.predictor import Predictor
from drcollab.models.mask_path import grader_inputs
from helpers import write_tiny_bundle


@pytest.fixture(scope="module")
def dme_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_bundle(tmp_path_factory.mktemp("tta") / "model", dme=True)


def images() -> torch.Tensor:
    return torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(0)) * 2 - 1  # W != H: catches h vs v


def test_none_is_the_plain_forward_pass(dme_bundle: Path) -> None:
    predictor, x = Predictor(dme_bundle, tta="none"), images()
    g, c = predictor.bundle.generator, predictor.bundle.grader
    with torch.no_grad():
        masks = torch.sigmoid(g(x))
        # The grader's masks come through the one mask path (pooled and quantised as the training cache is).
        inputs = grader_inputs(g, x, predictor.grader_factor, predictor.tile, predictor.overlap, False)
        out = c(x, inputs.masks)
    got = predictor.forward(x)
    assert predictor.tta == "none"
    torch.testing.assert_close(got.masks, masks, rtol=0, atol=0)
    torch.testing.assert_close(got.grades, torch.softmax(out.logits, 1), rtol=0, atol=0)
    torch.testing.assert_close(got.dme, torch.softmax(out.dme_logits, 1), rtol=0, atol=0)


@pytest.mark.parametrize("tta, flips", [("hflip", [(), (3,)]), ("flips", [(), (3,), (2,), (2, 3)])])
def test_flips_average_the_probabilities_of_the_flipped_copies(dme_bundle: Path, tta: str, flips: list) -> None:
    plain, x = Predictor(dme_bundle), images()
    runs = [plain.forward(x.flip(dims) if dims else x) for dims in flips]
    want_masks = sum(r.masks.flip(dims) if dims else r.masks for r, dims in zip(runs, flips, strict=True)) / len(flips)
    got = Predictor(dme_bundle, tta=tta).forward(x)
    torch.testing.assert_close(got.masks, want_masks, rtol=0, atol=1e-6)
    torch.testing.assert_close(got.grades, sum(r.grades for r in runs) / len(flips), rtol=0, atol=1e-6)
    torch.testing.assert_close(got.dme, sum(r.dme for r in runs) / len(flips), rtol=0, atol=1e-6)
    torch.testing.assert_close(got.grades.sum(1), torch.ones(2))
    assert not torch.allclose(got.masks, runs[0].masks)  # the flips did change something


def test_the_bundle_sets_the_default_and_bad_values_are_refused(tmp_path: Path) -> None:
    bundle = write_tiny_bundle(tmp_path / "model")
    info = json.loads((bundle / "bundle.json").read_text())
    assert Predictor(bundle).tta == "none"
    (bundle / "bundle.json").write_text(json.dumps({**info, "tta": "flips"}))
    assert Predictor(bundle).tta == "flips" and Predictor(bundle, tta="hflip").tta == "hflip"
    with pytest.raises(ValueError, match="tta 'rot90': choose one of none, hflip, flips"):
        Predictor(bundle, tta="rot90")
    (bundle / "bundle.json").write_text(json.dumps({**info, "tta": "rot90"}))
    with pytest.raises(DataError, match="tta: Input should be 'none', 'hflip' or 'flips'"):
        Predictor(bundle)
    with pytest.raises(ConfigError, match="test-time flips it was exported with"):
        load_engine(tmp_path / "model.onnx", tta="hflip")


def test_predict_cli_passes_tta_to_the_predictor(dme_bundle: Path, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    image = wide_fundus(5, 72, 104)
    Image.fromarray(image).save(tmp_path / "in" / "eye.png")
    args = ["predict", str(tmp_path / "in"), "--checkpoint", str(dme_bundle), "--out", str(tmp_path / "out"),
            "--tta", "hflip", "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "out/images/in/eye.png/result.json").read_text())
    want = Predictor(dme_bundle, tta="hflip").predict([image])[0]
    np.testing.assert_allclose(record["probabilities"], want.probabilities, atol=1e-6)
    assert record["probabilities"] != Predictor(dme_bundle).predict([image])[0].probabilities
