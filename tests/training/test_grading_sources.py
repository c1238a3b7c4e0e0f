"""Several graded sources at once: shares in the config, each source split by its own folds, a sampler that draws
each source's share, and validation metrics per source in metrics.csv."""

from __future__ import annotations

import csv
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from training_helpers import tiny_config

from drcollab.config import load_config
from drcollab.data.folds import split_records
from drcollab.data.sources import DatasetSpec, read_records
from drcollab.distributed import DistInfo
from drcollab.errors import ConfigError, DataError
from drcollab.training.config import TrainConfig
from drcollab.training.data import build_data, train_sampler
from drcollab.training.datasets import FundusDataset
from drcollab.training.sampling import EpochSampler, share_weights
from drcollab.training.trainer import run_training

YAML = """\
data:
  pixel: [{format: idrid-seg, root: data/IDRiD}]
  image:
    - {format: idrid-grade, root: data/IDRiD, share: 0.5}
    - {format: messidor2, root: data/Messidor-2, share: 0.3}
    - {format: eyepacs, root: data/EyePACS-256, share: 0.2}
"""


@pytest.fixture(scope="module")
def messidor2_copy(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic images as a Messidor-2 layout (renamed m2_*), grades kept, DME binary, one photo ungradable."""
    root = tmp_path_factory.mktemp("m2")
    (root / "IMAGES").mkdir()
    rows = ["id_code,diagnosis,adjudicated_dme,adjudicated_gradable"]
    for i, line in enumerate((synth_root / "labels.csv").read_text().splitlines()[1:]):
        path, grade, dme = line.split(",")[:3]
        shutil.copyfile(synth_root / path, root / "IMAGES" / f"m2_{Path(path).name}")
        rows.append(f"m2_{Path(path).stem}.jpg,{grade},{int(dme == '2')},{int(i != 5)}")
    (root / "messidor_data.csv").write_text("\n".join(rows) + "\n")
    return root


def test_a_yaml_list_of_sources_with_shares(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(YAML)
    cfg = load_config(TrainConfig, path)
    assert [(s.format, s.share) for s in cfg.data.image] == [("idrid-grade", 0.5), ("messidor2", 0.3),
                                                             ("eyepacs", 0.2)]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("0.2}", "0.1}"), r"data.image shares sum to 0.9 \(0.5 \+ 0.3 \+ 0.1\)"),
        ((", share: 0.2}", "}"), "give every source a 'share'"),
        (("root: data/IDRiD}]", "root: data/IDRiD, share: 1}]"), "data.pixel: 'share' applies to data.image"),
        (("0.2}", "0}"), r"data.image.2.share"),
    ],
)
def test_bad_shares_are_refused(tmp_path: Path, edit: tuple[str, str], message: str) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(YAML.replace(*edit))
    with pytest.raises(ConfigError, match=message):
        load_config(TrainConfig, path)


def test_share_weights_draw_each_sources_share() -> None:
    sources = [0] * 10 + [1] * 300 + [2] * 40  # sizes unlike the shares
    sampler = EpochSampler(len(sources), seed=0, weights=share_weights(sources, [0.5, 0.3, 0.2]))
    drawn = []
    for epoch in range(100):  # 35,000 draws: a share's standard error is at most 0.003
        sampler.set_epoch(epoch)
        drawn += [sources[i] for i, _ in sampler]
    counts = Counter(drawn)
    assert [counts[k] / len(drawn) for k in range(3)] == pytest.approx([0.5, 0.3, 0.2], abs=0.012)
    with pytest.raises(ValueError, match=r"source 2 has a share of the draws \(0.2\) but no image"):
        share_weights([0, 1, 1], [0.5, 0.3, 0.2])


def test_each_source_is_split_by_its_own_folds_and_sampled_by_its_share(synth_root: Path, messidor2_copy: Path,
                                                                        tmp_path: Path) -> None:
    image = [{"format": "generic", "root": str(synth_root), "share": 0.25},
             {"format": "messidor2", "root": str(messidor2_copy), "share": 0.75}]
    cfg = tiny_config(synth_root, tmp_path / "cache", data={"image": image})
    data = build_data(cfg.data, pixel_used=False, image_used=False)
    for part, spec in zip(data.image_sources, image, strict=True):
        alone = [r for r in read_records(DatasetSpec.model_validate(spec)) if r.grade is not None]
        train, val = split_records(alone, cfg.data.n_folds, cfg.data.val_fold, cfg.data.fold_seed)
        assert (part.train, part.val) == (train, val)
    assert [p.label for p in data.image_sources] == ["generic", "messidor2"]
    assert data.image_train == data.image_sources[0].train + data.image_sources[1].train
    assert len(data.image_sources[1].train) + len(data.image_sources[1].val) == 23  # one photo ungradable
    assert "ungradable" in data.summary() and "messidor2 " in data.summary()
    for balanced in (False, True):
        dataset = FundusDataset(data.image_train, load=lambda r: None, labels="grade")  # records only, no pixels
        sampler = train_sampler(dataset, 0, 1, DistInfo(), balanced, data.image_shares)
        drawn = []
        for epoch in range(200):
            sampler.set_epoch(epoch)
            drawn += [data.image_train[i].source for i, _ in sampler]
        assert Counter(drawn)["messidor2"] / len(drawn) == pytest.approx(0.75, abs=0.03)


def test_a_source_without_a_gradable_image_or_too_small_for_the_folds_is_named(synth_root: Path, tmp_path: Path
                                                                                ) -> None:
    root = tmp_path / "m2"
    (root / "IMAGES").mkdir(parents=True)
    header = "id_code,diagnosis,adjudicated_dme,adjudicated_gradable\n"
    (root / "messidor_data.csv").write_text(header + "a.jpg,,,0\nb.jpg,,,0\n")
    image = [{"format": "generic", "root": str(synth_root)}, {"format": "messidor2", "root": str(root)}]
    cfg = tiny_config(synth_root, tmp_path / "cache", data={"image": image})
    with pytest.raises(DataError, match=r"m2: this messidor2 source holds no image with a grade \(data.image\)"):
        build_data(cfg.data, pixel_used=False, image_used=False)
    shutil.copyfile(next((synth_root / "images").iterdir()), root / "IMAGES" / "a.png")
    (root / "messidor_data.csv").write_text(header + "a.jpg,1,0,1\nb.jpg,,,0\n")
    with pytest.raises(DataError, match="m2: cannot make 4 folds from 1 images of 1 patients: lower data.n_folds"):
        build_data(cfg.data, pixel_used=False, image_used=False)


def test_a_grading_run_on_two_sources_logs_metrics_per_source(synth_root: Path, messidor2_copy: Path,
                                                              tmp_path: Path) -> None:
    image = [{"format": "generic", "root": str(synth_root), "share": 0.5},
             {"format": "messidor2", "root": str(messidor2_copy), "share": 0.5}]
    cfg = tiny_config(synth_root, tmp_path / "cache", data={"image": image}, grader={"dme": True},
                      seg_pretrain={"epochs": 0}, joint={"epochs": 0})
    run_training(cfg, tmp_path / "run")
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    val = {r["key"]: float(r["value"]) for r in rows if r["stage"] == "grade_pretrain" and r["key"].startswith("val/")}
    for key in ("val/accuracy", "val/generic/accuracy", "val/messidor2/accuracy", "val/generic/kappa",
                "val/messidor2/kappa"):
        assert key in val
    for source in ("generic", "messidor2"):
        assert 0 <= val[f"val/{source}/accuracy"] <= 1
    assert np.isfinite([float(r["value"]) for r in rows if r["key"] == "train/dme"]).all()


def test_a_photo_without_a_field_of_view_is_left_out_and_named_and_too_many_stop_the_run(
        synth_root: Path, messidor2_copy: Path, tmp_path: Path) -> None:
    root = tmp_path / "m2"
    shutil.copytree(messidor2_copy, root)
    black = sorted((root / "IMAGES").iterdir())[0]
    from PIL import Image

    Image.new("RGB", (64, 64)).save(black, format="JPEG")  # no field of view to find
    image = [{"format": "generic", "root": str(synth_root), "share": 0.5},
             {"format": "messidor2", "root": str(root), "share": 0.5}]
    cfg = tiny_config(synth_root, tmp_path / "cache", data={"image": image, "max_unusable": 0.1})
    for _ in range(2):  # the second time from the cache's mark, without decoding the photo again
        data = build_data(cfg.data, pixel_used=False)
        names = [r.name for r in data.image_train + data.image_val]
        assert black.stem not in {n.removeprefix("messidor2/") for n in names} and len(names) == 24 + 23 - 1
        assert all(black.stem not in r.name for p in data.image_sources for r in p.train + p.val)
        assert "1 unusable photo (no field of view or undecodable)" in data.summary()
    strict = tiny_config(synth_root, tmp_path / "cache", data={"image": image, "max_unusable": 0.0})
    with pytest.raises(DataError, match=rf"{black.name}: .*field of view.*1 of the 23 photos of messidor2 cannot be "
                                         r"used \(more than data.max_unusable = 0.0\)"):
        build_data(strict.data, pixel_used=False)
