"""``drcollab predict`` under ``torchrun --standalone --nproc_per_node=2`` on the CPU (gloo)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

from predict_inputs import GOOD_SIZES, make_mixed_folder


def test_two_ranks_split_the_images_and_rank0_merges_one_result(tiny_bundle: Path, tmp_path: Path) -> None:
    folder = make_mixed_folder(tmp_path / "in")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "drcollab.cli", "predict", str(folder), "--checkpoint", str(tiny_bundle), "--out", str(out),
           "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("predicted 3 images") == 1  # only rank 0 reports
    summary = json.loads((out / "predictions.json").read_text())
    # Each image predicted exactly once over both ranks: a rank that took every image would double the records.
    assert summary["counts"] == {"predicted": 3, "graded": 3, "ungradable": 0, "predicted_now": 3, "reused": 0,
                                 "failed": 2, "skipped": 1}
    assert [r["id"] for r in summary["predictions"]] == sorted(GOOD_SIZES)
    assert len(summary["failures"]) == 2  # scan failures reported once, not once per rank
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert [r["id"] for r in rows] == sorted(GOOD_SIZES)
    assert not (out / ".parts").exists()
    for item_id in GOOD_SIZES:
        assert (out / "images" / item_id / "result.json").is_file()
