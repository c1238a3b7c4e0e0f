import pytest

from drcollab.config import PreprocessConfig, load_config, read_yaml_tree
from drcollab.errors import ConfigError


def test_base_files_merge_underneath(tmp_path):
    (tmp_path / "base.yaml").write_text("size: 256\nnormalise: false\n")
    (tmp_path / "row.yaml").write_text("base: base.yaml\nsize: 128\n")
    cfg = load_config(PreprocessConfig, tmp_path / "row.yaml", ["sigma_fraction=0.05"])
    assert (cfg.size, cfg.normalise, cfg.sigma_fraction) == (128, False, 0.05)


def test_base_cycle_is_refused(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        read_yaml_tree(tmp_path / "a.yaml")


def test_environment_variables_expand_with_defaults(tmp_path, monkeypatch):
    path = tmp_path / "c.yaml"
    path.write_text("size: ${DRCOLLAB_TEST_SIZE:-64}\n")
    assert load_config(PreprocessConfig, path).size == 64
    monkeypatch.setenv("DRCOLLAB_TEST_SIZE", "96")
    assert load_config(PreprocessConfig, path).size == 96
    path.write_text("size: ${DRCOLLAB_TEST_UNSET}\n")
    with pytest.raises(ConfigError, match="DRCOLLAB_TEST_UNSET is not set"):
        load_config(PreprocessConfig, path)


def test_missing_file_and_bad_override_are_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: config file not found"):
        load_config(PreprocessConfig, tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="must look like key=value"):
        load_config(PreprocessConfig, None, ["size"])
    with pytest.raises(ConfigError, match="size"):
        load_config(PreprocessConfig, None, ["size=3"])
