"""The grader through the shared tester (all three modes, with and without lesion statistics), the stage-2
initialisation and its checks.

``test_resnet`` is timm's 0.4M-parameter test network (random weights, nothing downloaded).
"""

from __future__ import annotations

import pytest
import timm
import torch
from model_tester import ModelTester

from drcollab.config import GraderConfig
from drcollab.errors import ConfigError
from drcollab.models import GraderOutput, LesionGrader, grader_from_ori
from drcollab.models.lesion_stats import num_stats

TINY = {"backbone": "test_resnet", "att_channels": 8}


class TestGrader(ModelTester):
    model_cls = LesionGrader
    cases = [
        [GraderConfig(mode="ori", **TINY), (2, 3, 64, 64), (2, 5)],
        [GraderConfig(mode="pretrained", **TINY), (2, 3, 64, 64), (2, 5)],
        [GraderConfig(mode="attention", **TINY), (2, 3, 64, 64), (2, 5)],
        [GraderConfig(mode="attention", low_stage=2, **TINY), (3, 3, 96, 64), (3, 5)],
        [GraderConfig(mode="attention", num_lesions=2, num_grades=2, **TINY), (2, 3, 64, 96), (2, 2)],
        [GraderConfig(mode="ori", dme=True, **TINY), (2, 3, 64, 64), (2, 5)],
        [GraderConfig(mode="attention", dme=True, **TINY), (2, 3, 64, 64), (2, 5)],
        [GraderConfig(mode="ori", head="ordinal", **TINY), (2, 3, 64, 64), (2, 5)],
        [GraderConfig(mode="attention", head="ordinal", dme=True, **TINY), (2, 3, 64, 64), (2, 5)],
        [GraderConfig(mode="ori", lesion_stats=True, dme=True, **TINY), (2, 3, 64, 64), (2, 5)],
        [GraderConfig(mode="pretrained", lesion_stats=True, **TINY), (2, 3, 64, 64), (2, 5)],
        [GraderConfig(mode="attention", lesion_stats=True, dme=True, **TINY), (2, 3, 64, 64), (2, 5)],
    ]

    def inputs(self, config: GraderConfig, shape: tuple[int, ...]) -> tuple[torch.Tensor, ...]:
        b, _, h, w = shape
        stats = torch.randn(b, num_stats(config.num_lesions)) if config.lesion_stats else None
        return torch.randn(shape), torch.rand(b, config.num_lesions, h, w), stats

    def outputs(self, out: GraderOutput) -> list[torch.Tensor]:
        return [t for t in out if t is not None]


@pytest.mark.parametrize("low_stage, stride", [(0, 2), (1, 4), (2, 8)])
def test_attention_maps_have_f_low_resolution(low_stage: int, stride: int) -> None:
    model = LesionGrader(GraderConfig(mode="attention", low_stage=low_stage, **TINY))
    out = model(torch.randn(2, 3, 64, 96), torch.rand(2, 4, 64, 96))
    assert out.attention.shape == (2, 4, 64 // stride, 96 // stride)
    assert model.low_stride == stride
    assert ((out.attention > 0) & (out.attention < 1)).all()  # sigmoid maps


def test_ori_has_no_attention_and_pretrained_uses_max_pooled_masks() -> None:
    assert LesionGrader(GraderConfig(mode="ori", **TINY))(torch.randn(1, 3, 64, 64)).attention is None
    masks = torch.zeros(1, 4, 64, 64)
    masks[0, 0, 5, 9] = 1.0  # a one-pixel microaneurysm: max-pooling keeps it at full strength
    out = LesionGrader(GraderConfig(mode="pretrained", **TINY))(torch.randn(1, 3, 64, 64), masks)
    assert out.attention.shape == (1, 4, 16, 16)
    assert out.attention[0, 0, 5 // 4, 9 // 4] == 1.0 and out.attention.sum() == 1.0


@pytest.mark.parametrize("mode", ["pretrained", "attention"])
def test_masked_modes_refuse_missing_or_misshapen_masks(mode: str) -> None:
    model = LesionGrader(GraderConfig(mode=mode, **TINY))
    with pytest.raises(ValueError, match=rf"mode '{mode}' needs masks of shape \(B=2, L=4, H, W\).*got None"):
        model(torch.randn(2, 3, 64, 64))
    with pytest.raises(ValueError, match=r"got \(2, 3, 64, 64\)"):
        model(torch.randn(2, 3, 64, 64), torch.rand(2, 3, 64, 64))


@pytest.mark.parametrize("mode", ["ori", "pretrained", "attention"])
def test_lesion_stats_grader_refuses_missing_or_misshapen_stats_and_others_refuse_stats(mode: str) -> None:
    image, masks = torch.randn(2, 3, 64, 64), torch.rand(2, 4, 64, 64)
    model = LesionGrader(GraderConfig(mode=mode, lesion_stats=True, **TINY))
    with pytest.raises(ValueError, match=r"lesion_stats needs stats of shape \(B=2, S=40\).*got None"):
        model(image, masks)
    with pytest.raises(ValueError, match=r"got \(2, 39\)"):
        model(image, masks, torch.randn(2, 39))
    with pytest.raises(ValueError, match="grader.lesion_stats false"):
        LesionGrader(GraderConfig(mode=mode, **TINY))(image, masks, torch.randn(2, 40))


@pytest.mark.parametrize("mode", ["ori", "attention"])
def test_the_grade_depends_on_the_stats_and_their_gradient_reaches_normaliser_and_heads(mode: str) -> None:
    torch.manual_seed(0)
    model = LesionGrader(GraderConfig(mode=mode, lesion_stats=True, dme=True, **TINY)).train()
    image, masks, stats = torch.randn(4, 3, 64, 64), torch.rand(4, 4, 64, 64), torch.randn(4, 40)
    out = model(image, masks, stats)
    # A random projection: the plain sum of a batch-normed feature's linear function has no gradient.
    sum((t * torch.randn_like(t)).sum() for t in (out.logits, out.dme_logits)).backward()
    assert model.stats_norm.weight.grad.abs().min() > 0  # every statistic's scale learns
    features = model.classifier.in_features
    assert features == (1 if mode == "ori" else 4) * model.top_channels + 40
    for head in (model.classifier, model.dme_classifier):
        assert head.weight.grad[:, -40:].abs().sum() > 0
    model.eval()
    with torch.no_grad():
        changed = model(image, masks, stats + 1).logits
        assert not torch.allclose(changed, model(image, masks, stats).logits)


@pytest.mark.parametrize("mode", ["ori", "pretrained", "attention"])
def test_dme_head_gives_three_logits_from_the_pooled_features_and_none_when_off(mode: str) -> None:
    masks = torch.rand(2, 4, 64, 64)
    out = LesionGrader(GraderConfig(mode=mode, dme=True, **TINY))(torch.randn(2, 3, 64, 64), masks)
    assert out.logits.shape == (2, 5) and out.dme_logits.shape == (2, 3)
    assert LesionGrader(GraderConfig(mode=mode, **TINY))(torch.randn(2, 3, 64, 64), masks).dme_logits is None


@pytest.mark.parametrize("head", ["softmax", "ordinal"])
@pytest.mark.parametrize("dme, lesion_stats", [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize("mode", ["pretrained", "attention"])
def test_from_ori_reproduces_ori_logits_when_alpha_is_one(mode: str, dme: bool, lesion_stats: bool, head: str) -> None:
    torch.manual_seed(0)
    ori = LesionGrader(GraderConfig(mode="ori", dme=dme, lesion_stats=lesion_stats, head=head, **TINY))
    image = torch.randn(2, 3, 64, 64)
    stats = torch.randn(2, 40) if lesion_stats else None
    with torch.no_grad():
        ori.train()(image, None, stats)  # non-trivial BN statistics
    ori.eval()
    model = grader_from_ori(ori, mode).eval()
    assert model.config.mode == mode and model.config.backbone == ori.config.backbone
    assert type(model.classifier) is type(ori.classifier)
    with torch.no_grad():
        if mode == "pretrained":
            out = model(image, torch.ones(2, 4, 64, 64), stats)
        else:  # force alpha == 1 by a huge bias on W_high
            for conv in model.attention.high:
                conv.weight.zero_()
                conv.bias.fill_(100.0)
            out = model(image, torch.rand(2, 4, 64, 64), stats)
        expected = ori(image, None, stats)
    torch.testing.assert_close(out.logits, expected.logits, rtol=1e-5, atol=1e-5)
    if dme:
        torch.testing.assert_close(out.dme_logits, expected.dme_logits, rtol=1e-5, atol=1e-5)
    else:
        assert out.dme_logits is None and model.dme_classifier is None
    with pytest.raises(ValueError, match="needs an 'ori' grader"):
        grader_from_ori(model)


def test_from_ori_refuses_a_dme_head_the_ori_grader_lacks() -> None:
    ori = LesionGrader(GraderConfig(mode="ori", **TINY))
    with pytest.raises(ConfigError, match="grader.dme True differs from the pre-trained grader's False"):
        grader_from_ori(ori, GraderConfig(mode="attention", dme=True, **TINY))


def test_other_feature_list_backbones_split_by_feature_info() -> None:
    # convnext names its stages "stages.0".."stages.3" (flattened to "stages_0"), with no stride-2 stage.
    model = LesionGrader(GraderConfig(backbone="convnext_atto", mode="attention", low_stage=0, att_channels=8))
    out = model(torch.randn(1, 3, 64, 64), torch.rand(1, 4, 64, 64))
    assert out.logits.shape == (1, 5) and out.attention.shape == (1, 4, 16, 16)
    features = timm.create_model("convnext_atto", features_only=True)
    assert model.low_channels == features.feature_info.channels()[0]
    assert model.top_channels == features.feature_info.channels()[-1]


def test_bad_backbone_settings_name_the_field() -> None:
    with pytest.raises(ConfigError, match=r"grader.low_stage 4: test_resnet has stages 0..4.* use 0..3"):
        LesionGrader(GraderConfig(low_stage=4, **TINY))
    with pytest.raises(ConfigError, match="grader.backbone 'efficientnet_b0'.*FeatureListNet"):
        LesionGrader(GraderConfig(backbone="efficientnet_b0"))


@pytest.mark.parametrize("mode", ["ori", "pretrained", "attention"])
def test_eval_mode_matches_train_mode_once_bn_statistics_are_current(mode: str) -> None:
    # With momentum 1 the running statistics are those of the last train-mode batch, so eval mode must
    # reproduce train mode (up to the unbiased variance). In attention mode the plain context pass keeps
    # its own statistics; sharing rest's would normalise the attended pass wrongly and fail this test.
    torch.manual_seed(0)
    model = LesionGrader(GraderConfig(mode=mode, **TINY))
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = 1.0
            torch.nn.init.ones_(m.weight)  # undo timm's zero_init_last so every block matters
    image, masks = torch.randn(4, 3, 128, 128), torch.rand(4, 4, 128, 128)
    with torch.no_grad():
        train_logits = model.train()(image, masks).logits
        eval_logits = model.eval()(image, masks).logits
    torch.testing.assert_close(eval_logits, train_logits, atol=0.05, rtol=0)
