"""ONNX export: onnxruntime matches PyTorch within 1e-4 (DR, DME and lesions), metadata carries the preprocessing
and the referable rule, ``--engine onnx``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from predict_inputs import GOOD_SIZES, make_mixed_folder
from typer.testing import CliRunner

from drcollab.cli import app
from drcollab.errors import DataError
from drcollab.inference.bundle import load_bundle
from drcollab.inference.engine import load_engine
from drcollab.inference.onnx_engine import OnnxPredictor
from drcollab.inference.onnx_export import export_onnx
from drcollab.inference.predictor import Predictor
from helpers import write_tiny_bundle

TOL = 1e-4






@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(tiny bundle with a DME head, its model.onnx), exported once through the CLI (~15 s of torch.export)."""
    root = tmp_path_factory.mktemp("onnx")
    bundle = write_tiny_bundle(root / "model", dme=True)
    info = json.loads((bundle / "bundle.json").read_text())
    rule = {"dr_min": 3, "dme_min": 2, "threshold": 0.37}  # a programme's threshold, as calibrate sets it
    (bundle / "bundle.json").write_text(json.dumps({**info, "referable": rule}))
    onnx_path = root / "model.onnx"
    args = ["export", "--checkpoint", str(bundle), "--format", "onnx", "--out", str(onnx_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "height and width dynamic" in result.output
    return bundle, onnx_path


@pytest.mark.parametrize("shape", [(2, 3, 64, 64), (1, 3, 96, 128)])
def test_onnxruntime_matches_pytorch(exported: tuple[Path, Path], shape: tuple[int, ...]) -> None:
    bundle, onnx_path = exported
    torch_pred, onnx_pred = Predictor(bundle), OnnxPredictor(onnx_path)
    images = torch.rand(shape, generator=torch.Generator().manual_seed(1)) * 2 - 1
    want, got = torch_pred.forward(images), onnx_pred.forward(images)
    assert want.dme.shape == (shape[0], 3)
    for w, g in zip(want, got, strict=True):
        assert g.shape == w.shape
        assert torch.allclose(g, w, atol=TOL, rtol=0), float((g - w).abs().max())


def test_metadata_carries_the_bundle_preprocessing_and_identity(exported: tuple[Path, Path]) -> None:
    bundle, onnx_path = exported
    meta = OnnxPredictor(onnx_path).metadata
    assert meta.preprocess == load_bundle(bundle).preprocess
    assert meta.fingerprint == load_engine(bundle).fingerprint and meta.name == "tiny"
    assert meta.outputs == ["lesion_probs", "grade_probs", "dme_probs"] and meta.input_size == "dynamic"
    assert meta.referable == load_bundle(bundle).referable
    assert (meta.referable.dr_min, meta.referable.dme_min, meta.referable.threshold) == (3, 2, 0.37)


def test_predict_with_the_onnx_engine_matches_the_torch_engine(exported: tuple[Path, Path], tmp_path: Path) -> None:
    bundle, onnx_path = exported
    folder = make_mixed_folder(tmp_path / "in")
    runs = {}
    for engine, checkpoint in (("torch", bundle), ("onnx", onnx_path)):
        out = tmp_path / engine
        args = ["predict", str(folder), "--checkpoint", str(checkpoint), "--out", str(out), "--engine", engine]
        result = CliRunner().invoke(app, [*args, "--no-progress"])
        assert result.exit_code == 0, result.output
        runs[engine] = json.loads((out / "predictions.json").read_text())
    assert runs["onnx"]["model"]["engine"] == "onnx"
    assert runs["onnx"]["model"]["fingerprint"] == runs["torch"]["model"]["fingerprint"]
    for t, o in zip(runs["torch"]["predictions"], runs["onnx"]["predictions"], strict=True):
        assert o["id"] == t["id"] and o["id"] in GOOD_SIZES
        assert np.allclose(o["probabilities"], t["probabilities"], atol=TOL) and o["grade"] == t["grade"]
        assert np.allclose(o["dme_probabilities"], t["dme_probabilities"], atol=TOL) and o["dme"] == t["dme"]
        assert o["referable_probability"] == pytest.approx(t["referable_probability"], abs=TOL)
        assert o["referable"] == (o["referable_probability"] >= 0.37)  # the bundle's threshold, from the metadata
    assert runs["onnx"]["referable"] == runs["torch"]["referable"] == {"dr_min": 3, "dme_min": 2, "threshold": 0.37,
                                                                       "uses_dme": True}


def test_onnx_engine_refuses_torch_only_options_and_foreign_files(exported: tuple[Path, Path], tmp_path: Path) -> None:
    _, onnx_path = exported
    with pytest.raises(Exception, match="CPU provider"):
        load_engine(onnx_path, amp=True)
    plain = tmp_path / "plain.onnx"
    plain.write_bytes(b"not a graph")
    with pytest.raises(DataError, match="onnxruntime cannot load it"):
        OnnxPredictor(plain)


@pytest.mark.slow
def test_an_ordinal_grader_with_test_time_flips_exports(tmp_path: Path) -> None:
    bundle = write_tiny_bundle(tmp_path / "model", dme=True, head="ordinal")
    info = json.loads((bundle / "bundle.json").read_text())
    (bundle / "bundle.json").write_text(json.dumps({**info, "tta": "hflip"}))
    result = export_onnx(bundle, tmp_path / "ordinal.onnx")
    assert result.dynamic_size and result.max_abs_diff < TOL
    onnx_pred = OnnxPredictor(result.path)
    assert onnx_pred.session.get_modelmeta().custom_metadata_map["drcollab.tta"] == "hflip"
    images = torch.rand(2, 3, 64, 96) * 2 - 1
    for w, g in zip(Predictor(bundle).forward(images), onnx_pred.forward(images), strict=True):
        assert torch.allclose(g, w, atol=TOL, rtol=0), float((g - w).abs().max())


@pytest.mark.slow
def test_a_tiled_bundle_exports_at_its_fixed_preprocess_size(tmp_path: Path) -> None:
    bundle = write_tiny_bundle(tmp_path / "model")
    info = json.loads((bundle / "bundle.json").read_text())
    (bundle / "bundle.json").write_text(json.dumps({**info, "tile": 32, "tile_overlap": 16}))
    result = export_onnx(bundle, tmp_path / "tiled.onnx")
    assert not result.dynamic_size and "32-px tiles" in result.note and result.max_abs_diff < TOL
    onnx_pred = OnnxPredictor(result.path)
    assert onnx_pred.metadata.input_size == "fixed"
    images = torch.rand(3, 3, 64, 64) * 2 - 1
    for w, g in zip(Predictor(bundle).forward(images), onnx_pred.forward(images), strict=True):
        assert (w is None) == (g is None) and (w is None or torch.allclose(g, w, atol=TOL, rtol=0))


def test_a_lesion_stats_bundle_computes_its_statistics_inside_the_graph(tmp_path: Path) -> None:
    bundle = write_tiny_bundle(tmp_path / "model", grader_mode="pretrained", dme=True, lesion_stats=True)
    result = export_onnx(bundle, tmp_path / "stats.onnx")
    assert result.dynamic_size and result.max_abs_diff < TOL
    torch_pred, onnx_pred = Predictor(bundle), OnnxPredictor(result.path)
    for shape in [(2, 3, 64, 64), (1, 3, 96, 128)]:
        images = torch.rand(shape, generator=torch.Generator().manual_seed(2)) * 2 - 1
        for w, g in zip(torch_pred.forward(images), onnx_pred.forward(images), strict=True):
            assert torch.allclose(g, w, atol=TOL, rtol=0), float((g - w).abs().max())
