"""The one mask path in training: a frozen G's masks and statistics, precomputed once per grading image, are what
prediction gives the grader; the cache is reused across stages and runs and missed when G changes; the datasets
move the masks with the image."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from training_helpers import logged, tiny_config

from drcollab.data.cache import PreprocessCache
from drcollab.data.io import read_image
from drcollab.data.records import Record
from drcollab.data.sources import read_records
from drcollab.data.transforms import AugmentConfig
from drcollab.inference.bundle import load_bundle
from drcollab.inference.predictor import Predictor
from drcollab.models import load_model
from drcollab.models.mask_path import quantise
from drcollab.training.config import TrainConfig
from drcollab.training.datasets import FundusDataset
from drcollab.training.mask_inputs import mask_cache
from drcollab.training.trainer import run_training

FROZEN = {"train_generator": False, "semi": False, "adversarial": False}


def stats_config(data_root: Path, cache: Path, **sections: dict) -> TrainConfig:
    """G trained at 128 px on 64-px crops (so run in 64-px tiles), the grader at 64 px with lesion statistics."""
    tree = {"data": {"seg_size": 128}, "grader": {"mode": "pretrained", "lesion_stats": True},
            "seg_pretrain": {"augment": {"crop": 64}}, "joint": {"epochs": 1, "max_steps_per_epoch": 2, **FROZEN}}
    for key, value in sections.items():
        tree[key] = {**tree.get(key, {}), **value}
    return tiny_config(data_root, cache, **tree)


def test_training_and_prediction_give_the_grader_the_same_masks_and_stats(synth_root, tmp_path):
    cfg = stats_config(synth_root, tmp_path / "cache")
    bundle_dir = run_training(cfg, tmp_path / "run")
    graded = [r for r in read_records(cfg.data.image[0]) if r.grade is not None]
    # Stage 1b computed every grading image once; stage 2 (G still frozen) found them all in the cache.
    assert logged(tmp_path / "run", "precompute/images") == {"grade_pretrain": len(graded), "joint": 0.0}
    assert set(logged(tmp_path / "run", "precompute/seconds")) == {"grade_pretrain", "joint"}
    assert "joint" in logged(tmp_path / "run", "val/kappa")
    info = json.loads((bundle_dir / "bundle.json").read_text())
    assert (info["tile"], info["tile_overlap"], info["generator_preprocess"]["size"]) == (64, 16, 128)

    predictor = Predictor(load_bundle(bundle_dir))
    seen: list[tuple[torch.Tensor, ...]] = []
    predictor.bundle.grader.register_forward_pre_hook(lambda module, args: seen.append(args))
    cache = mask_cache(cfg, predictor.bundle.generator)
    for record in graded[:3]:
        predictor.predict([read_image(record.image_path)])
        _, masks, stats = seen[-1]  # what the grader got: (1, L, 64, 64) pooled masks, (1, 40) statistics
        cached_masks, cached_stats = cache.get(record)
        assert torch.equal(quantise(masks[0]), torch.from_numpy(cached_masks))
        assert torch.equal(stats[0], torch.from_numpy(cached_stats))


def test_a_second_run_reuses_the_cache_and_another_g_misses_it(synth_root, tmp_path):
    first = stats_config(synth_root, tmp_path / "cache", joint={"epochs": 0})
    run_training(first, tmp_path / "first")
    g_path = tmp_path / "first/models/seg_pretrain/generator"
    second = stats_config(synth_root, tmp_path / "cache", seg_pretrain={"epochs": 0}, joint={"epochs": 0},
                          init={"generator": str(g_path)})
    bundle_dir = run_training(second, tmp_path / "second")
    assert logged(tmp_path / "second", "precompute/images") == {"grade_pretrain": 0.0}
    info = json.loads((bundle_dir / "bundle.json").read_text())
    assert info["parts"]["generator"]["stage"] == "grade_pretrain" and info["tile"] == 64  # G travels with the grader
    # ... and says where it was trained: the first run's stage 1a, not the stage that only used it
    g_meta = json.loads((bundle_dir / "generator.json").read_text())["metadata"]
    assert g_meta == {"stage": "seg_pretrain", "epochs": first.seg_pretrain.epochs, "run": first.name,
                      "frozen_in": {"stage": "grade_pretrain", "run": second.name}}
    assert json.loads((bundle_dir / "grader.json").read_text())["metadata"]["stage"] == "grade_pretrain"

    g = load_model(g_path)
    record = next(r for r in read_records(first.data.image[0]) if r.grade is not None)
    assert mask_cache(first, g).path(record).is_file()
    with torch.no_grad():
        next(g.parameters()).view(-1)[0] += 1e-3
    assert not mask_cache(first, g).path(record).is_file()  # G's weights changed
    untiled = first.model_copy(update={"seg_pretrain": first.seg_pretrain.model_copy(
        update={"augment": AugmentConfig(crop=None)})})
    assert mask_cache(untiled, load_model(g_path)).folder != mask_cache(first, load_model(g_path)).folder


def test_lesion_stats_need_a_trained_g(synth_root, tmp_path):
    with pytest.raises(ValidationError, match="lesion_stats needs G's masks"):
        stats_config(synth_root, tmp_path, seg_pretrain={"epochs": 0}, joint={"epochs": 0})


@pytest.mark.parametrize("augment", [
    AugmentConfig(rotation=0), AugmentConfig(rotation=30, crop=48), AugmentConfig(scale=(0.8, 1.2), crop=40),
])
def test_the_grading_dataset_moves_gs_masks_exactly_with_the_image(synth_root, tmp_path, augment):
    cfg = tiny_config(synth_root, tmp_path / "cache")
    records: list[Record] = [r for r in read_records(cfg.data.image[0]) if r.grade is not None][:2]
    cache = PreprocessCache(tmp_path / "cache", cfg.data.preprocess)

    def g_inputs(record: Record) -> tuple[np.ndarray, np.ndarray]:  # a "mask" that is the image's red channel
        red = cache.get(record).image[..., 0]  # (S, S) uint8
        return np.stack([red] * 4), np.arange(40, dtype=np.float32)

    ds = FundusDataset(records, cache.get, augment, labels="grade", g_inputs=g_inputs)
    for seed in range(6):
        item = ds[(seed % 2, seed)]
        inside = item["fov"][0]  # pixels that came from inside the field of view, not the fill
        assert item["g_masks"].dtype == torch.uint8 and item["g_masks"].shape[1:] == item["image"].shape[1:]
        assert torch.equal(item["g_masks"][0][inside], item["image"][0][inside])
        assert torch.equal(item["stats"], torch.arange(40, dtype=torch.float32))  # invariant: not moved
