"""X^I batches carry the lesion presence their labels imply, through the config's table, into stage 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from training_helpers import tiny_config

from drcollab.config import dump_config, load_config
from drcollab.data.preprocess import Geometry, Preprocessed
from drcollab.data.presence import PresenceConfig
from drcollab.data.records import Record
from drcollab.training import stages
from drcollab.training.config import TrainConfig
from drcollab.training.datasets import FundusDataset
from drcollab.training.trainer import run_training

S = 32


def _pre(record: Record) -> Preprocessed:
    geometry = Geometry((0, 0, S, S), (S, S), S, (S / 2, S / 2), S / 2)
    return Preprocessed(np.zeros((S, S, 3), np.uint8), None, np.ones((S, S), bool), geometry)


def test_grade_items_carry_presence_codes() -> None:
    records = [Record(name="a", image_path=Path("a.jpg"), grade=0),
               Record(name="b", image_path=Path("b.jpg"), grade=1),
               Record(name="c", image_path=Path("c.jpg"), grade=3, dme=0)]
    ds = FundusDataset(records, _pre, labels="grade")
    assert [ds[k]["presence"].tolist() for k in range(3)] == [[0, 0, 0, 0], [1, 0, 0, 0], [-1, -1, 0, -1]]
    assert ds[0]["presence"].dtype == torch.int64
    table = PresenceConfig(dr={3: {"HE": "present"}}, dme={})
    assert FundusDataset(records, _pre, labels="grade", presence=table)[2]["presence"].tolist() == [-1, 1, -1, -1]


def test_the_presence_table_round_trips_through_the_run_config(tmp_path: Path) -> None:
    sources = {"pixel": [{"format": "generic", "root": "unused"}], "image": [{"format": "generic", "root": "unused"}]}
    tree = {"data": {**sources, "presence": {"dr": {2: {"HE": "present"}}, "dme": {1: {"EX": "present"}}}}}
    cfg = TrainConfig.model_validate(tree)
    path = tmp_path / "config.yaml"
    path.write_text(dump_config(cfg))
    assert load_config(TrainConfig, path).data.presence == cfg.data.presence


def test_stage_2_gets_presence_from_the_config_and_runs_the_recipe(synth_root, tmp_path, monkeypatch) -> None:
    table = {"dr": {g: {"HE": "present"} for g in range(5)}, "dme": {}}
    joint = {"pseudo_mask": "refined", "zero_absent": True}
    cfg = tiny_config(synth_root, tmp_path / "cache", data={"presence": table}, joint=joint,
                      grader={"attention_init": "masks"}, discriminator={"sees_image": False})
    seen = []
    real_step = stages.joint_step

    def recording(nets, batch, *args, **kwargs):  # noqa: ANN001, ANN202
        seen.append(batch.image["presence"].clone())
        return real_step(nets, batch, *args, **kwargs)

    monkeypatch.setattr(stages, "joint_step", recording)
    run_training(cfg, tmp_path / "run")
    assert seen and all(torch.equal(codes, torch.tensor([[-1, 1, -1, -1]] * len(codes))) for codes in seen)
    metrics = (tmp_path / "run" / "metrics.csv").read_text()
    assert "train/bce_i" in metrics and "train/adv" in metrics and "train/disc" in metrics
