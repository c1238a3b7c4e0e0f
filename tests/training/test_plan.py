"""drcollab plan: the per-image figure, scaled from a smaller size, matches the peak measured at the size itself."""

from __future__ import annotations

import pytest
import torch
from training_helpers import tiny_config

from drcollab.precision import resolve_precision
from drcollab.training.plan import GB, format_rows, measure_stage, parse_memory, plan_rows

CPU = torch.device("cpu")
FP32 = resolve_precision("off", CPU)


def _cfg(tmp_path):
    return tiny_config(tmp_path, tmp_path / "cache", data={"preprocess": {"size": 128}},
                       seg_pretrain={"augment": {"crop": 128}}, joint={"pixel_batch_size": 2})


@pytest.mark.parametrize("stage", ["seg_pretrain", "grade_pretrain", "joint"])
def test_plan_per_image_figure_is_within_25_percent_of_the_measured_peak(stage, tmp_path):
    cfg = _cfg(tmp_path)
    planned = measure_stage(cfg, stage, CPU, FP32, measure_size=64, checkpointing=False)  # scaled 64 -> 128 px
    measured = measure_stage(cfg, stage, CPU, FP32, measure_size=128, checkpointing=False)
    assert planned.size == measured.size == 128
    assert planned.unit_bytes == pytest.approx(measured.unit_bytes, rel=0.25)


def test_checkpointing_lowers_the_planned_memory_of_g(tmp_path):
    cfg = _cfg(tmp_path)
    off = measure_stage(cfg, "seg_pretrain", CPU, FP32, 64, checkpointing=False)
    on = measure_stage(cfg, "seg_pretrain", CPU, FP32, 64, checkpointing=True)
    assert on.unit_bytes < 0.6 * off.unit_bytes


def test_plan_rows_say_what_fits_and_the_largest_batch(tmp_path):
    cfg = _cfg(tmp_path)
    m = measure_stage(cfg, "grade_pretrain", CPU, FP32, 64, checkpointing=False)
    budget = m.need(3) + 1  # room for exactly 3 images per GPU
    [row] = plan_rows(cfg, [m], 1, budget)  # batch 4 on one GPU: does not fit, 3 do, accumulation 2 (2 x 2)
    assert (row["fits"], row["largest"], row["accumulation"]) == (False, 3, 2)
    [row] = plan_rows(cfg, [m], 2, budget)  # 2 per GPU
    assert row["fits"] and row["micro"] == 2
    line = format_rows([row]).splitlines()[-1]
    assert line.startswith("| grade_pretrain | 128 | off | 2 x 2 | 2 |") and "| yes | 3 | 1 |" in line
    assert parse_memory("80GB") == 80 * GB and parse_memory("141 GB") == 141 * GB
