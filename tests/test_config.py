import pytest

from drcollab.config import PreprocessConfig, load_config, read_yaml_tree
from drcollab.errors import ConfigError
from drcollab.training.config import TrainConfig


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


def test_a_yaml_syntax_error_is_one_line_naming_the_file_and_the_lines(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("size: 128\nsigma_fraction: [0.05\nnormalise: true\n")
    with pytest.raises(ConfigError) as err:
        load_config(PreprocessConfig, path)
    assert str(err.value) == (f"{path}: not valid YAML: line 2, column 17: while parsing a flow sequence; "
                              "line 3, column 10: expected ',' or ']', but got ':'")


def test_an_override_value_that_is_not_yaml_is_one_line_naming_it():
    with pytest.raises(ConfigError) as err:
        load_config(PreprocessConfig, None, ["size=[3"])
    assert "\n" not in str(err.value) and str(err.value).startswith("override 'size=[3': the value is not valid YAML")


def test_a_misspelt_key_names_the_nearest_valid_one_in_files_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("joint:\n  epoch: 3\ndata:\n  pixel:\n    - {format: generic, rooot: /x}\n")
    with pytest.raises(ConfigError) as err:
        load_config(TrainConfig, path, ["seg_pretrain.batchsize=4", "gradr.mode=ori"])
    lines = str(err.value).splitlines()
    assert lines[0] == f"invalid config ({path} and the command-line key=value overrides):"
    for line in ("  joint.epoch: unknown key; did you mean 'epochs'? (got 3)",
                 "  data.pixel.0.rooot: unknown key; did you mean 'root'? (got '/x')",
                 "  seg_pretrain.batchsize: unknown key; did you mean 'batch_size'? (got 4)",
                 "  gradr: unknown key; did you mean 'grader'? (got {'mode': 'ori'})"):
        assert line in lines
    with pytest.raises(ConfigError, match=r"  zzz: unknown key \(got 1\)"):  # nothing near: no guess
        load_config(PreprocessConfig, None, ["zzz=1"])
