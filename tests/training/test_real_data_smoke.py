"""A real-data smoke run: 2 IDRiD segmentation and 8 grading images through every stage at 64 px."""

from __future__ import annotations

import json

from training_helpers import tiny_config

from drcollab.training.trainer import run_training


def test_idrid_through_every_stage(idrid_root, tmp_path):
    idrid = {"root": str(idrid_root)}
    cfg = tiny_config(
        tmp_path / "unused",
        tmp_path / "cache",
        data={"pixel": [{"format": "idrid-seg", **idrid}], "image": [{"format": "idrid-grade", **idrid}],
              "limit_pixel": 2, "limit_image": 8},
        joint={"epochs": 1, "max_steps_per_epoch": 2},
    )
    bundle = run_training(cfg, tmp_path / "run")
    info = json.loads((bundle / "bundle.json").read_text())
    assert info["trained_stages"] == ["seg_pretrain", "grade_pretrain", "joint"]
    rows = (tmp_path / "run/metrics.csv").read_text().splitlines()
    assert any(",joint," in r and "val/kappa" in r for r in rows)
    assert len(list((tmp_path / "cache").rglob("*.npz"))) == 2 + 1 + 8 + 4  # train + validation images, once each
