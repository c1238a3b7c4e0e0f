from pathlib import Path

import pytest
from typer.testing import CliRunner

from drcollab.cli import app
from drcollab.config import dump_config, load_config
from drcollab.errors import ConfigError
from drcollab.training.config import TrainConfig
from drcollab.training.run_folder import RunFolder

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_invalid_value_is_refused_naming_the_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("data: {pixel: [{format: generic, root: x}], image: [{format: generic, root: x}]}\n"
                    "seg_pretrain: {epochs: -1, batch_size: 2}\n")
    with pytest.raises(ConfigError, match=r"seg_pretrain\.epochs"):
        load_config(TrainConfig, path)


def test_unknown_key_is_refused_naming_it(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("data: {pixel: [{format: generic, root: x}], image: [{format: generic, root: x}]}\n"
                    "joint: {epochs: 1, batch_size: 2, adversarail: true}\n")
    with pytest.raises(ConfigError, match=r"joint\.adversarail"):
        load_config(TrainConfig, path)


def test_inconsistent_ablation_is_refused():
    data = ["data.pixel=[{format: generic, root: x}]", "data.image=[{format: generic, root: x}]"]
    with pytest.raises(ConfigError, match="joint.semi needs grader.mode 'attention'"):
        load_config(TrainConfig, None, [*data, "grader.mode=pretrained", "joint.adversarial=false"])
    with pytest.raises(ConfigError, match="ori"):
        load_config(TrainConfig, None, [*data, "grader.mode=ori"])


def test_cli_reports_config_errors_with_exit_code_2(tmp_path):
    result = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "run"), "seg_pretrain.lr=-1"])
    assert result.exit_code == 2
    assert "seg_pretrain.lr" in result.output


def test_run_folder_with_another_config_is_not_overwritten(tmp_path):
    data = ["data.pixel=[{format: generic, root: x}]", "data.image=[{format: generic, root: x}]"]
    a = load_config(TrainConfig, None, data)
    b = load_config(TrainConfig, None, [*data, "joint.epochs=3"])
    folder = RunFolder(tmp_path / "run")
    folder.claim(dump_config(a))
    before = folder.config_path.read_text()
    with pytest.raises(ConfigError, match=r"fields differ: joint\.epochs"):
        folder.claim(dump_config(b))
    assert folder.config_path.read_text() == before
    folder.claim(dump_config(a))  # the same config may start again while nothing was trained


@pytest.mark.parametrize("path", sorted(CONFIGS.rglob("*.yaml")), ids=lambda p: str(p.relative_to(CONFIGS)))
def test_shipped_configs_are_valid(path):
    load_config(TrainConfig, path)


RELEASE = CONFIGS.parent / "release/drcollab-idrid-cpu"


@pytest.mark.parametrize("name", ["config.yaml", "generator_config.yaml"])
def test_the_release_bundles_training_configs_still_load(name):
    load_config(TrainConfig, RELEASE / name)


@pytest.mark.parametrize("key", ["presence_weight=1.0", "pseudo_gate=relative", "disc_match=grade"])
def test_a_removed_stage_2_switch_is_an_unknown_key(key):
    data = ["data.pixel=[{format: generic, root: x}]", "data.image=[{format: generic, root: x}]"]
    with pytest.raises(ConfigError, match=rf"joint\.{key.split('=')[0]}"):
        load_config(TrainConfig, None, [*data, f"joint.{key}"])


def test_cpu_stage_2_is_the_recipe_and_its_paper_rows_the_papers_formulation():
    recipe = load_config(TrainConfig, CONFIGS / "cpu/lesion_recipe.yaml")
    assert (recipe.joint.pseudo_mask, recipe.joint.zero_absent, recipe.grader.attention_init,
            recipe.joint.semi, recipe.joint.adversarial) == ("refined", True, "masks", True, False)
    assert load_config(TrainConfig, CONFIGS / "cpu/base.yaml").joint == recipe.joint
    with_d = load_config(TrainConfig, CONFIGS / "cpu/lesion_recipe_adv.yaml")
    assert with_d.joint == recipe.joint.model_copy(update={"adversarial": True})
    assert with_d.discriminator.sees_image is False
    for path in (CONFIGS / "cpu/lesion_semi_adv.yaml", CONFIGS / "paper/lesion_semi_adv.yaml"):
        paper = load_config(TrainConfig, path)
        assert (paper.joint.pseudo_mask, paper.joint.zero_absent, paper.grader.attention_init,
                paper.discriminator.sees_image, paper.joint.semi, paper.joint.adversarial) == (
            "attention", False, "random", True, True, True), path
