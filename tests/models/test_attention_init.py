import pytest
import torch

from drcollab.config import GraderConfig
from drcollab.models import LesionGrader


def test_masks_init_makes_attention_a_calibrated_copy_of_the_masks():
    torch.manual_seed(0)
    config = GraderConfig(backbone="resnet18", att_channels=8, attention_init="masks", attention_gain=10.0)
    grader = LesionGrader(config).eval()
    masks = torch.zeros(2, 4, 64, 64)
    masks[:, 0, 8:12, 8:12] = 1.0
    masks[:, 2] = 0.3
    alpha = grader(torch.randn(2, 3, 64, 64), masks).attention  # (2, 4, 16, 16)
    pooled = torch.nn.functional.adaptive_max_pool2d(masks, alpha.shape[-2:])
    assert torch.allclose(alpha, torch.sigmoid(10.0 * (pooled - 0.5)), atol=1e-5)


def test_random_init_does_not_follow_the_masks():
    torch.manual_seed(0)
    grader = LesionGrader(GraderConfig(backbone="resnet18", att_channels=8, attention_init="random")).eval()
    masks = torch.zeros(2, 4, 64, 64)
    masks[:, 0, 8:12, 8:12] = 1.0
    alpha = grader(torch.randn(2, 3, 64, 64), masks).attention
    assert alpha[:, 0].max() < 0.9


def test_stage_two_grader_takes_the_target_config_over_the_ori_one():
    from drcollab.errors import ConfigError
    from drcollab.models import grader_from_ori

    torch.manual_seed(0)
    ori = LesionGrader(GraderConfig(mode="ori", backbone="resnet18", att_channels=8))
    target = GraderConfig(mode="attention", backbone="resnet18", att_channels=16, attention_init="random")
    model = grader_from_ori(ori, target)
    assert model.config.att_channels == 16 and model.config.attention_init == "random"
    assert model.attention.high[0].weight.shape == (1, 16, 1, 1)
    assert model.attention.high[0].weight[0, 1:].abs().sum() > 0  # not the masks initialisation
    with pytest.raises(ConfigError, match="grader.backbone"):
        grader_from_ori(ori, GraderConfig(mode="attention", backbone="resnet34"))
