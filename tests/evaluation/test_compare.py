"""compare(): several evaluations in one set of tables and one ROC / PR figure."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from drcollab.errors import ConfigError, DataError
from drcollab.evaluation.compare import compare
from drcollab.evaluation.evaluate import evaluate
from drcollab.evaluation.selection import read_eval_set


@pytest.fixture(scope="module")
def two_evaluations(eval_bundle: Path, eval_synth: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The same tiny model on two halves of the synthetic set; the second one scores grading only."""
    records = read_eval_set(eval_synth, "generic").segmentation
    first, second = tmp_path_factory.mktemp("a"), tmp_path_factory.mktemp("b")
    evaluate(eval_bundle, records[:3], first, overlays=0, progress=False)
    graded_only = [replace(r, mask_paths=None) for r in records[3:]]
    evaluate(eval_bundle, graded_only, second, overlays=0, progress=False)
    return [first, second]


def test_compare_merges_the_rows_of_two_evaluations(two_evaluations: list[Path], tmp_path: Path) -> None:
    path = compare(two_evaluations, tmp_path, labels=["CE2", "Semi+Adv"])
    text = path.read_text()
    assert path == tmp_path / "compare.md"
    table3 = text.split("## Lesion segmentation")[1].split("## ")[0]
    table1 = text.split("## DR grading")[1].split("## ")[0]
    assert "| **CE2** |" in table3 and "**Semi+Adv**" not in table3  # the second scored no segmentation
    assert "| **CE2** |" in table1 and "| **Semi+Adv** |" in table1
    assert "CE2+Semi+Adv" in table3 and "Lesion(Semi+Adv)" in table1  # the paper's rows stay beside ours
    assert "(n=3 seg / 3 graded)" in table1 and "(n=0 seg / 3 graded)" in table1
    png = tmp_path / "curves.png"
    assert png.stat().st_size < 500_000 and Image.open(png).size[0] > 1000


def test_default_labels_tell_same_named_models_apart(two_evaluations: list[Path], tmp_path: Path) -> None:
    text = compare(two_evaluations, tmp_path).read_text()
    for folder in two_evaluations:
        assert f"**tiny ({folder.name})**" in text


def test_compare_refuses_bad_inputs(two_evaluations: list[Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="3 labels for 2 evaluations"):
        compare(two_evaluations, tmp_path, labels=["a", "b", "c"])
    with pytest.raises(DataError, match=r"nowhere/metrics\.json"):
        compare([two_evaluations[0], tmp_path / "nowhere"], tmp_path)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "metrics.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        compare([tmp_path / "bad"], tmp_path)
