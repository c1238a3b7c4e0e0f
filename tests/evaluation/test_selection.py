"""Dataset layout detection, split reading and the --val-fold-of selection of a run's validation fold (read from
the run folder by ``read_val_fold``)."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from drcollab.config import dump_config
from drcollab.data.folds import split_records
from drcollab.data.sources import DatasetSpec, read_records
from drcollab.data.synthetic import write_synthetic
from drcollab.errors import ConfigError, DataError
from drcollab.evaluation.selection import detect_format, read_eval_set, restrict_to_val_fold
from drcollab.training.config import TrainConfig
from drcollab.training.run_folder import read_val_fold


@pytest.fixture(scope="module")
def half_masked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 synthetic images, 6 with masks: X^P and X^I pools differ, so their folds differ."""
    return write_synthetic(tmp_path_factory.mktemp("half") / "set", n=12, size=64, seed=1, pixel_fraction=0.5,
                           progress=False)


def write_run(run: Path, pixel: list[dict], image: list[dict], sections: dict | None = None, **data: object) -> Path:
    """A minimal run folder: just RUN/config.yaml, as drcollab train writes it."""
    cfg = TrainConfig.model_validate({"data": {"pixel": pixel, "image": image, **data}, **(sections or {})})
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.yaml").write_text(dump_config(cfg))
    return run


def renamed_copy(root: Path, out: Path, prefix: str) -> Path:
    """A copy of a generic set's images and grades (no masks) with every name prefixed."""
    (out / "images").mkdir(parents=True)
    lines = ["path,grade"]
    for line in (root / "labels.csv").read_text().splitlines()[1:]:
        path, grade = line.split(",")[:2]
        new = f"images/{prefix}{Path(path).name}"
        shutil.copyfile(root / path, out / new)
        lines.append(f"{new},{grade}")
    (out / "labels.csv").write_text("\n".join(lines) + "\n")
    return out


def test_detect_format(tmp_path: Path, eval_synth: Path) -> None:
    assert detect_format(eval_synth) == "generic"
    (tmp_path / "idrid" / "A. Segmentation").mkdir(parents=True)
    assert detect_format(tmp_path / "idrid") == "idrid"
    assert detect_format(tmp_path / "idrid" / "A. Segmentation") == "idrid"
    (tmp_path / "messidor" / "Base11").mkdir(parents=True)
    (tmp_path / "messidor" / "Base11" / "Annotation_Base11.csv").write_text("x")
    assert detect_format(tmp_path / "messidor") == "messidor"
    (tmp_path / "m2" / "IMAGES").mkdir(parents=True)
    (tmp_path / "m2" / "messidor_data.csv").write_text("id_code,diagnosis,adjudicated_dme,adjudicated_gradable\n")
    assert detect_format(tmp_path / "m2") == "messidor2"
    (tmp_path / "kaggle").mkdir()
    (tmp_path / "kaggle" / "trainLabels.csv").write_text("image,level\n")
    assert detect_format(tmp_path / "kaggle") == "eyepacs"
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty.*pass --format"):
        detect_format(tmp_path / "empty")
    with pytest.raises(DataError, match="missing"):
        detect_format(tmp_path / "missing")


def test_idrid_auto_reads_segmentation_from_part_a_and_grading_from_part_b(idrid_root: Path) -> None:
    eval_set = read_eval_set(idrid_root, "auto", "train")
    assert len(eval_set.segmentation) == 54 and all(r.source == "idrid-seg" for r in eval_set.segmentation)
    assert len(eval_set.grading) == 413 and all(r.source == "idrid-grade" for r in eval_set.grading)
    assert eval_set.dataset == "IDRiD" and eval_set.description == "the IDRiD training split"
    assert [s["format"] for s in eval_set.info["sources"]] == ["idrid-seg", "idrid-grade"]


def test_a_generic_set_has_no_test_split(eval_synth: Path) -> None:
    with pytest.raises(ConfigError, match="no splits"):
        read_eval_set(eval_synth, "generic", "test")


def test_val_fold_of_selects_exactly_the_runs_validation_records(half_masked: Path, tmp_path: Path) -> None:
    spec = {"format": "generic", "root": str(half_masked)}
    run = write_run(tmp_path / "run", [spec], [spec], n_folds=3, val_fold=2, fold_seed=5)
    records = read_records(DatasetSpec.model_validate(spec))
    _, pixel_val = split_records([r for r in records if r.has_masks], 3, 2, 5)
    _, image_val = split_records([r for r in records if r.grade is not None], 3, 2, 5)
    selected = restrict_to_val_fold(read_eval_set(half_masked, "generic"), read_val_fold(run))
    assert [r.name for r in selected.segmentation] == sorted(r.name for r in pixel_val)
    assert [r.name for r in selected.grading] == sorted(r.name for r in image_val)
    assert {r.name for r in selected.segmentation} != {r.name for r in selected.grading}  # two pools, two splits
    assert selected.description == "validation fold 2 of 3 of the generic set 'set'"
    assert selected.info["fold"] == {"run": str(run), "n_folds": 3, "val_fold": 2, "fold_seed": 5}


def test_the_selection_records_paths_as_given(half_masked: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A metrics.json or calibration record that travels with a bundle names the folders the user named, not this
    machine's absolute paths."""
    spec = {"format": "generic", "root": str(half_masked)}
    write_run(tmp_path / "run", [spec], [spec], n_folds=3, val_fold=2, fold_seed=5)
    shutil.copytree(half_masked, tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    selected = restrict_to_val_fold(read_eval_set(Path("data"), "generic"), read_val_fold(Path("run")))
    assert selected.info["root"] == "data" and selected.info["fold"]["run"] == "run"


def test_val_fold_of_splits_each_of_the_runs_sources_on_its_own(half_masked: Path, tmp_path: Path) -> None:
    other = renamed_copy(half_masked, tmp_path / "other", "b_")
    specs = [{"format": "generic", "root": str(half_masked)}, {"format": "generic", "root": str(other)}]
    both = write_run(tmp_path / "both", specs[:1], specs, n_folds=4, val_fold=1, fold_seed=0)
    alone = write_run(tmp_path / "alone", specs[:1], specs[:1], n_folds=4, val_fold=1, fold_seed=0)
    own = [r for r in read_records(DatasetSpec.model_validate(specs[0])) if r.grade is not None]
    want = sorted(r.name for r in split_records(own, 4, 1, 0)[1])
    for run in (both, alone):  # a second source does not move the first one's validation fold
        selected = restrict_to_val_fold(read_eval_set(half_masked, "generic"), read_val_fold(run))
        assert [r.name for r in selected.grading] == want


def test_val_fold_of_refuses_runs_without_that_fold(half_masked: Path, tmp_path: Path) -> None:
    spec = {"format": "generic", "root": str(half_masked)}
    eval_set = read_eval_set(half_masked, "generic")
    with pytest.raises(ConfigError, match="config.yaml: run config not found"):
        read_val_fold(tmp_path / "nothing")
    with pytest.raises(ConfigError, match="val_fold is null"):
        read_val_fold(write_run(tmp_path / "all", [spec], [spec], val_fold=None))
    run = read_val_fold(write_run(tmp_path / "run", [spec], [spec]))
    with pytest.raises(ConfigError, match="not the test split"):
        restrict_to_val_fold(replace(eval_set, info={**eval_set.info, "split": "test"}), run)
    idrid = read_val_fold(write_run(tmp_path / "idrid", [{"format": "idrid-seg", "root": str(half_masked)}], [spec]))
    with pytest.raises(ConfigError, match=r"data.pixel.*no single generic train source.*idrid-seg"):
        restrict_to_val_fold(eval_set, idrid)



def test_val_fold_of_a_segmentation_only_run_drops_grading(half_masked: Path, tmp_path: Path) -> None:
    spec = {"format": "generic", "root": str(half_masked)}
    no_grading = {"epochs": 0, "batch_size": 1}
    run = write_run(tmp_path / "ce2", [spec], [], n_folds=3, val_fold=1,
                    sections={"grade_pretrain": no_grading, "joint": no_grading})
    selected = restrict_to_val_fold(read_eval_set(half_masked, "generic"), read_val_fold(run))
    records = [r for r in read_records(DatasetSpec.model_validate(spec)) if r.has_masks]
    assert [r.name for r in selected.segmentation] == sorted(r.name for r in split_records(records, 3, 1, 0)[1])
    assert selected.grading == []


def test_val_fold_of_reads_a_run_whose_config_names_a_removed_stage_2_key(half_masked: Path, tmp_path: Path) -> None:
    """Only the data section is read: an older run's ``joint.pseudo_gate`` does not stop its fold being found."""
    spec = {"format": "generic", "root": str(half_masked)}
    run = write_run(tmp_path / "run", [spec], [spec], n_folds=3, val_fold=1)
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("joint:\n", "joint:\n  pseudo_gate: relative\n", 1))
    assert "pseudo_gate" in config.read_text()
    assert read_val_fold(run).val_fold == 1
    config.write_text(config.read_text().replace("n_folds: 3", "n_folds: 1"))
    with pytest.raises(ConfigError, match="n_folds"):
        read_val_fold(run)
