"""G at its own resolution (data.seg_size): its own cache, the bundle records it, prediction honours it, and a run
preprocesses only the images its stages use."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError
from training_helpers import tiny_config

from drcollab.data.cache import PreprocessCache
from drcollab.data.synthetic import generate_fundus
from drcollab.inference.bundle import load_bundle
from drcollab.inference.predictor import Predictor
from drcollab.training.data import build_data
from drcollab.training.trainer import run_training


def test_stage_1_at_two_sizes_gives_a_bundle_that_predicts_at_gs_size(synth_root, tmp_path):
    cfg = tiny_config(synth_root, tmp_path / "cache", data={"seg_size": 128}, grader={"mode": "ori"},
                      seg_pretrain={"augment": {"crop": 64, "lesion_crops": 0.5, "crop_centre": "fov"}},
                      joint={"epochs": 0, "train_generator": False, "semi": False, "adversarial": False})
    bundle_dir = run_training(cfg, tmp_path / "run")
    info = json.loads((bundle_dir / "bundle.json").read_text())
    assert info["preprocess"]["size"] == 64 and info["generator_preprocess"]["size"] == 128
    assert info["tile"] == 64  # G runs in tiles of its crop, at its own scale
    # Each size has its own cache folder: X^P at 128 px, X^I at 64 px.
    sizes = sorted(json.loads(p.read_text())["size"] for p in (tmp_path / "cache").glob("*/config.json"))
    assert sizes == [64, 128]

    predictor = Predictor(load_bundle(bundle_dir))
    assert predictor.input_preprocess.size == 128 and predictor.grader_factor == 2
    image = generate_fundus(seed=3, size=160).image
    pred = predictor.predict([image])[0]
    assert pred.lesion_probs.shape == (4, 128, 128)
    # The grader sees the 128-px input averaged over 2x2 blocks: the 64-px image it was trained at.
    x = torch.rand(1, 3, 128, 128) * 2 - 1
    grades = predictor.forward(x).grades
    with torch.no_grad():
        direct = torch.softmax(predictor.bundle.grader(F.avg_pool2d(x, 2)).logits, 1)
    torch.testing.assert_close(grades, direct)


def test_a_segmentation_only_run_preprocesses_no_grading_image(synth_root, tmp_path):
    cfg = tiny_config(synth_root, tmp_path / "cache", data={"seg_size": 128}, joint={"epochs": 0})
    data = build_data(cfg.data, pixel_used=True, image_used=False)
    grader_cache = PreprocessCache(tmp_path / "cache", cfg.data.preprocess)
    assert not any(grader_cache.path(r).is_file() for r in data.image_train + data.image_val)
    assert all(data.seg_cache.path(r).is_file() for r in data.pixel_train + data.pixel_val)


def test_seg_size_must_be_a_multiple(synth_root, tmp_path):
    with pytest.raises(ValidationError, match="whole multiple of preprocess.size 64"):
        tiny_config(synth_root, tmp_path, data={"seg_size": 100})
