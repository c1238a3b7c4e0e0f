"""save_model / load_model beyond the shared round trip: file format, wrappers, atomicity, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

import drcollab
from drcollab.config import GeneratorConfig, GraderConfig
from drcollab.errors import DataError
from drcollab.models import LesionGenerator, LesionGrader, load_model, read_checkpoint_info, save_model
from drcollab.models.checkpoint import HASH_KEY, checkpoint_paths, file_sha256, strip_prefixes
from helpers import overwrite_tensor_bytes, record_sha256

TINY = GeneratorConfig(widths=(4, 4, 8, 8, 8))


class FakeDDP(nn.Module):
    """Stands in for DistributedDataParallel: holds the model as ``.module`` (keys gain ``module.``)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module


def test_writes_two_files_with_kind_config_version_and_metadata(tmp_path: Path) -> None:
    model = LesionGenerator(TINY)
    weights, meta = save_model(model, tmp_path / "sub" / "g", metadata={"epoch": 3, "auc": 0.5})
    assert (weights.name, meta.name) == ("g.safetensors", "g.json")
    info = json.loads(meta.read_text())
    assert info["kind"] == "generator" and info["drcollab_version"] == drcollab.__version__
    assert info["config"] == TINY.model_dump(mode="json") and info["metadata"] == {"epoch": 3, "auc": 0.5}
    assert read_checkpoint_info(tmp_path / "sub" / "g.json") == info
    assert set(load_file(weights)) == set(model.state_dict())
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["g.json", "g.safetensors"]  # no temp files


@pytest.mark.parametrize("wrap", [FakeDDP, torch.compile, lambda m: FakeDDP(torch.compile(m))])
def test_wrapped_models_save_bare_keys(tmp_path: Path, wrap) -> None:
    model = LesionGenerator(TINY)
    weights, _ = save_model(wrap(model), tmp_path / "g")
    assert set(load_file(weights)) == set(model.state_dict())
    assert isinstance(load_model(tmp_path / "g"), LesionGenerator)


def test_prefixed_weights_on_disk_are_loaded(tmp_path: Path) -> None:
    model = LesionGenerator(TINY)
    weights, _ = save_model(model, tmp_path / "g")
    save_file({f"module._orig_mod.{k}": v for k, v in load_file(weights).items()}, weights)
    record_sha256(weights)
    loaded = load_model(tmp_path / "g.safetensors")
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    assert strip_prefixes({"_orig_mod.module.a.b": torch.zeros(1)}).keys() == {"a.b"}


def test_loading_a_grader_never_asks_timm_for_pretrained_weights(tmp_path: Path, monkeypatch) -> None:
    config = GraderConfig(backbone="test_resnet", mode="ori")
    save_model(LesionGrader(config), tmp_path / "c")
    info = json.loads((tmp_path / "c.json").read_text())
    info["config"]["pretrained"] = True  # e.g. a model fine-tuned from ImageNet weights
    (tmp_path / "c.json").write_text(json.dumps(info))
    import timm

    real = timm.create_model
    seen = []
    monkeypatch.setattr(timm, "create_model", lambda *a, **k: seen.append(k["pretrained"]) or real(*a, **k))
    loaded = load_model(tmp_path / "c")
    assert seen == [False] and loaded.config.pretrained is True


def test_missing_and_broken_files_raise_data_errors_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"g\.json: checkpoint metadata not found"):
        load_model(tmp_path / "g")
    save_model(LesionGenerator(TINY), tmp_path / "g")
    weights, meta = checkpoint_paths(tmp_path / "g")
    weights.write_bytes(b"not safetensors")
    with pytest.raises(DataError, match=r"g\.safetensors: not a readable safetensors file"):
        load_model(tmp_path / "g")
    save_model(LesionGenerator(GeneratorConfig(widths=(4, 4, 8, 8, 16))), tmp_path / "other")
    checkpoint_paths(tmp_path / "other")[0].replace(weights)
    record_sha256(weights)  # another model's weights, recorded as this one's
    with pytest.raises(DataError, match=r"g\.safetensors: weights do not match the generator config in g\.json"):
        load_model(tmp_path / "g")
    meta.write_text(json.dumps({"kind": "generator", "config": {"widths": [1, 2]}}))
    with pytest.raises(DataError, match=r"(?s)g\.json: invalid config.*widths"):
        load_model(tmp_path / "g")
    meta.write_text(json.dumps({"kind": "unet", "config": {}}))
    with pytest.raises(DataError, match="not a drcollab checkpoint"):
        load_model(tmp_path / "g")


def test_weights_damaged_with_finite_values_are_refused_naming_the_file(tmp_path: Path) -> None:
    weights, meta = save_model(LesionGenerator(TINY), tmp_path / "g")
    assert json.loads(meta.read_text())[HASH_KEY] == file_sha256(weights)
    overwrite_tensor_bytes(weights)
    assert all(torch.isfinite(v).all() for v in load_file(weights).values())  # only the hash can tell
    with pytest.raises(DataError, match=r"g\.safetensors: sha256 differs from g\.json: the file is damaged or was "
                       "replaced; restore it from a good copy, or train again"):
        load_model(tmp_path / "g")


def test_a_checkpoint_saved_before_hashes_were_recorded_loads_unchecked(tmp_path: Path) -> None:
    model = LesionGenerator(TINY)
    _, meta = save_model(model, tmp_path / "g")
    info = json.loads(meta.read_text())
    del info[HASH_KEY]
    meta.write_text(json.dumps(info))
    loaded = load_model(tmp_path / "g")
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())


def test_bad_metadata_or_model_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        save_model(LesionGenerator(TINY), tmp_path / "g", metadata={"x": object()})
    with pytest.raises(TypeError, match="Linear is not one of the checkpointable models"):
        save_model(nn.Linear(2, 2), tmp_path / "g")
    assert list(tmp_path.iterdir()) == []


def test_a_grader_saved_before_the_dme_head_existed_loads_without_one(tmp_path: Path) -> None:
    model = LesionGrader(GraderConfig(backbone="test_resnet", mode="ori"))
    _, meta = save_model(model, tmp_path / "c")
    info = json.loads(meta.read_text())
    del info["config"]["dme"]  # the config of an older drcollab
    meta.write_text(json.dumps(info))
    loaded = load_model(tmp_path / "c")
    assert loaded.dme_classifier is None and loaded(torch.randn(1, 3, 64, 64)).dme_logits is None
    with_dme = LesionGrader(GraderConfig(backbone="test_resnet", mode="ori", dme=True))
    save_model(with_dme, tmp_path / "d")
    assert torch.equal(load_model(tmp_path / "d").dme_classifier.weight, with_dme.dme_classifier.weight)
