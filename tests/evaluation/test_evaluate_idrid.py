"""Real-data smoke test: one IDRiD segmentation image scored at its full 4288x2848 resolution."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

from drcollab.constants import LESIONS
from drcollab.data.io import load_masks
from drcollab.evaluation.evaluate import evaluate
from drcollab.evaluation.selection import read_eval_set

IDRID_HW = (2848, 4288)


def test_one_idrid_image_is_scored_against_its_full_resolution_masks(idrid_root: Path, eval_bundle: Path,
                                                                     tmp_path: Path) -> None:
    eval_set = read_eval_set(idrid_root, "idrid-seg", "train")
    eval_set = replace(eval_set, segmentation=eval_set.segmentation[:1])
    record = eval_set.segmentation[0]
    start = time.perf_counter()
    metrics = evaluate(eval_bundle, eval_set, tmp_path, overlays=1, progress=False)
    assert time.perf_counter() - start < 60  # ~8 s on a loaded 2-core CPU
    masks = load_masks(record, IDRID_HW)  # (L, 2848, 4288)
    for i, lesion in enumerate(LESIONS):
        m = metrics["segmentation"][lesion]
        assert m["n_pos"] == masks[i].sum()
        assert m["n_pos"] + m["n_neg"] == IDRID_HW[0] * IDRID_HW[1]  # the whole image, not the 64-px input
        assert m["images_with_lesion"] == int(masks[i].any())
        assert (m["auc_pr"] is None) == (not masks[i].any())  # IDRiD_01 has no soft-exudate file
    assert metrics["description"] == "the IDRiD training split" and metrics["data"]["dataset"] == "IDRiD"
    assert json.loads((tmp_path / "metrics.json").read_text())["counts"]["segmentation"] == 1
    assert (tmp_path / "overlays" / f"{record.name}.png").stat().st_size < 500_000
