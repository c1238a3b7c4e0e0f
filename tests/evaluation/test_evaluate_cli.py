"""``drcollab evaluate`` and ``drcollab compare`` through typer's CliRunner: exit codes and messages."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from typer.testing import CliRunner

from drcollab.cli import app
from drcollab.config import dump_config
from drcollab.data.folds import split_records
from drcollab.data.sources import DatasetSpec, read_records
from drcollab.training.config import TrainConfig


def run(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def test_evaluate_the_validation_fold_of_a_run_then_compare(eval_bundle: Path, eval_synth: Path,
                                                            tmp_path: Path) -> None:
    spec = {"format": "generic", "root": str(eval_synth)}
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    cfg = TrainConfig.model_validate({"data": {"pixel": [spec], "image": [spec], "n_folds": 3, "val_fold": 0}})
    (run_dir / "config.yaml").write_text(dump_config(cfg))
    code, output = run("evaluate", "--checkpoint", eval_bundle, "--data", eval_synth, "--val-fold-of", run_dir,
                       "--out", tmp_path / "eval", "--device", "cpu", "--overlays", "1", "--workers", "1",
                       "--tta", "hflip")
    assert code == 0, output
    assert "evaluated on validation fold 0 of 3 of the generic set 'set'" in output
    assert "report:" in output and "AUC_PR MA" in output
    records = read_records(DatasetSpec.model_validate(spec))
    _, val = split_records(records, 3, 0, cfg.data.fold_seed)  # every synthetic image has masks and a grade
    with (tmp_path / "eval" / "predictions.csv").open() as f:
        assert sorted(row["name"] for row in csv.DictReader(f)) == sorted(r.name for r in val)
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["data"]["fold"]["val_fold"] == 0 and metrics["counts"]["images"] == len(val)
    assert metrics["settings"]["tta"] == "hflip"
    assert len(list((tmp_path / "eval" / "overlays").iterdir())) == 1

    code, output = run("compare", tmp_path / "eval", tmp_path / "eval", "--out", tmp_path / "cmp", "--labels", "a,b")
    assert code == 0, output
    assert (tmp_path / "cmp" / "compare.md").is_file() and (tmp_path / "cmp" / "curves.png").is_file()
    code, output = run("compare", tmp_path / "eval", "--out", tmp_path / "cmp", "--labels", "a,b")
    assert code == 2 and "2 labels for 1 evaluations" in output


def test_a_missing_checkpoint_is_named(eval_synth: Path, tmp_path: Path) -> None:
    code, output = run("evaluate", "--checkpoint", tmp_path / "no_such_run", "--data", eval_synth,
                       "--out", tmp_path / "eval")
    assert code == 2
    assert f"{tmp_path / 'no_such_run'}: checkpoint not found" in output
    assert not (tmp_path / "eval").exists()


def test_bad_data_roots_and_splits_are_refused(eval_bundle: Path, tmp_path: Path) -> None:
    (tmp_path / "idrid" / "A. Segmentation").mkdir(parents=True)
    code, output = run("evaluate", "--checkpoint", eval_bundle, "--data", tmp_path / "idrid", "--out", tmp_path / "o")
    assert code == 2 and "--split train or --split test" in output
    code, output = run("evaluate", "--checkpoint", eval_bundle, "--data", tmp_path / "nothing", "--out", tmp_path)
    assert code == 2 and f"{tmp_path / 'nothing'}: dataset root folder not found" in output
    code, output = run("evaluate", "--checkpoint", eval_bundle, "--data", tmp_path, "--format", "idrid-seg",
                       "--split", "valid", "--out", tmp_path)
    assert code == 2 and "'valid' is not one of" in output


def test_compare_names_a_folder_that_is_not_an_evaluation(tmp_path: Path) -> None:
    code, output = run("compare", tmp_path, "--out", tmp_path / "cmp")
    assert code == 2 and f"{tmp_path / 'metrics.json'}: not found" in output
