"""The Python entry point (``drcollab.load``) answers as ``drcollab predict`` does, with the CLI's errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from predict_inputs import predict_cli, wide_fundus

import drcollab
from drcollab.constants import LESIONS
from drcollab.data.preprocess import Geometry
from drcollab.errors import DataError
from drcollab.inference.api import Result


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(wide_fundus(3, 96, 128)).save(folder / "eye.png")
    Image.fromarray(np.zeros((96, 128, 3), np.uint8)).save(folder / "black.png")  # no field of view
    return folder


def record(out: Path, name: str) -> dict:
    return json.loads((out / "images" / f"in/{name}" / "result.json").read_text())


def test_load_predicts_what_the_cli_predicts(tiny_bundle: Path, photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert predict_cli(photos, "--checkpoint", tiny_bundle, "--out", out).exit_code == 0
    cli = record(out, "eye.png")
    model = drcollab.load(tiny_bundle)
    result = model.predict(photos / "eye.png")
    assert isinstance(result, Result) and result.gradable
    assert (result.grade, result.dme, result.referable) == (cli["grade"], cli["dme"], cli["referable"])
    np.testing.assert_allclose(result.probabilities, cli["probabilities"], atol=1e-6)
    assert result.lesion_area == pytest.approx(cli["lesion_area"], abs=1e-9)
    assert (result.width, result.height) == (cli["width"], cli["height"])
    full = np.asarray(Image.open(out / cli["outputs"]["lesion_maps"]["EX"]))
    assert np.abs(result.lesion_map("EX") * 255 - full).max() <= 1  # the same map, on the photo's pixels
    in_memory = model.predict([Image.open(photos / "eye.png"), np.asarray(Image.open(photos / "eye.png"))])
    assert [r.probabilities for r in in_memory] == [result.probabilities] * 2


def test_errors_and_ungradable_photos_are_the_clis(tiny_bundle: Path, photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    predict_cli(photos, "--checkpoint", tiny_bundle, "--out", out)
    model = drcollab.load(tiny_bundle)
    black = model.predict(photos / "black.png")
    assert not black.gradable and black.grade is None and black.lesion_probs is None
    assert black.reasons == record(out, "black.png")["ungradable_reasons"]
    missing = photos / "missing.png"
    cli = predict_cli(missing, "--checkpoint", tiny_bundle, "--out", tmp_path / "out2")
    with pytest.raises(DataError) as err:
        model.predict(missing)
    assert cli.exit_code == 2 and f"error: {err.value}" in cli.output
    with pytest.raises(DataError, match="uint8"):
        model.predict(np.zeros((96, 128), np.float32))
    with pytest.raises(DataError, match="checkpoint not found"):
        drcollab.load(tmp_path / "no_model")


def test_the_chosen_setting_is_said_and_recorded(tiny_bundle: Path, photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = predict_cli(photos, "--checkpoint", tiny_bundle, "--out", out)
    summary = json.loads((out / "predictions.json").read_text())
    model = summary["model"]
    assert model["engine"] == "torch" and model["setting"] in result.output
    assert set(model["choice"]["setting"]) == {"precision", "channels_last", "whole"}
    plain = predict_cli(photos, "--checkpoint", tiny_bundle, "--out", tmp_path / "plain", "--plain")
    assert "fp32, G in one whole pass (the plain path, as asked)" in plain.output  # tiny G: no tiles


def test_model_resolution_maps_carry_their_geometry_and_map_back(
    tiny_bundle: Path, photos: Path, tmp_path: Path
) -> None:
    full, small = tmp_path / "full", tmp_path / "small"
    assert predict_cli(photos, "--checkpoint", tiny_bundle, "--out", full).exit_code == 0
    assert predict_cli(photos, "--checkpoint", tiny_bundle, "--out", small, "--maps", "model").exit_code == 0
    a, b = record(full, "eye.png"), record(small, "eye.png")
    assert a["grade"] == b["grade"] and b["outputs"]["lesion_maps_resolution"] == "model"
    geometry = Geometry.from_dict(b["outputs"]["lesion_maps_geometry"])
    for lesion in LESIONS:
        model_map = np.asarray(Image.open(small / b["outputs"]["lesion_maps"][lesion]))
        assert model_map.shape == (geometry.size, geometry.size)
        photo_map = np.asarray(Image.open(full / a["outputs"]["lesion_maps"][lesion]))
        assert np.abs(geometry.to_original(model_map).astype(int) - photo_map).max() <= 1


def test_a_known_mask_at_model_resolution_lands_where_it_was_on_the_photo() -> None:
    h, w = 300, 450
    geometry = Geometry((0, -75, 450, 375), (h, w), 90, (225.0, 150.0), 225.0)  # the square around the FOV, 90 px
    model_map = np.zeros((90, 90), np.uint8)
    model_map[30:40, 60:70] = 255  # square px 150-200 down, 300-350 across: photo rows 75-125, columns 300-350
    back = geometry.to_original(model_map)
    assert back.shape == (h, w)
    assert (back[80:120, 305:345] == 255).all() and back[:70].max() == 0 and back[:, :295].max() == 0
