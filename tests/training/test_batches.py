"""Global batch sizes: the per-process split, the errors that name the stage, micro-batches that add up."""

from __future__ import annotations

from contextlib import nullcontext
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from drcollab.config import DiscriminatorConfig, GeneratorConfig, GraderConfig
from drcollab.errors import ConfigError
from drcollab.models import LesionDiscriminator, LesionGenerator, LesionGrader
from drcollab.training.config import TrainConfig
from drcollab.training.data import stage_batches
from drcollab.training.steps import JointBatch, Nets, joint_step, network_inputs, seg_step


def _data(pixel: int, image: int) -> SimpleNamespace:
    return SimpleNamespace(pixel_train=[None] * pixel, image_train=[None] * image)


def _paper(**sections) -> TrainConfig:
    return TrainConfig.model_validate({"data": {"pixel": [{"format": "generic", "root": "x"}],
                                                "image": [{"format": "generic", "root": "x"}]}, **sections})


@pytest.mark.parametrize(("ranks", "seg", "grade", "joint"), [(1, 32, 128, (16, 16)), (8, 4, 16, (2, 2))])
def test_paper_batches_are_global_and_split_over_the_ranks(ranks, seg, grade, joint):
    cfg, data = _paper(), _data(43, 413)  # IDRiD's X^P and X^I training sets of fold 0
    assert stage_batches(cfg, "seg_pretrain", data, ranks).per_rank == seg
    assert stage_batches(cfg, "grade_pretrain", data, ranks).per_rank == grade
    b = stage_batches(cfg, "joint", data, ranks)
    assert (b.per_rank, b.pixel_per_rank) == joint


def test_accumulation_splits_each_ranks_share_into_micro_batches():
    cfg = _paper(grade_pretrain={"batch_size": 128, "accumulation": 4})
    b = stage_batches(cfg, "grade_pretrain", _data(43, 413), 8)
    assert (b.per_rank, b.accumulation, b.micro) == (16, 4, 4)


@pytest.mark.parametrize(("sections", "ranks", "words"), [
    ({"seg_pretrain": {"batch_size": 32}}, 3, ["seg_pretrain.batch_size 32", "3 processes", "multiple of 3"]),
    ({"seg_pretrain": {"batch_size": 64}}, 8, ["seg_pretrain.batch_size 64", "only 43 training images"]),
    ({"grade_pretrain": {"batch_size": 16, "accumulation": 3}}, 2, ["grade_pretrain.batch_size 16", "x 3 micro"]),
    ({"joint": {"pixel_batch_size": 12}}, 8, ["joint.pixel_batch_size 12", "multiple of 8"]),
])
def test_a_batch_that_cannot_be_formed_names_its_stage(sections, ranks, words):
    cfg = _paper(**sections)
    stage = next(iter(sections))
    with pytest.raises(ConfigError) as err:
        stage_batches(cfg, stage, _data(43, 413), ranks)
    for w in words:
        assert w in str(err.value)


def test_uint8_batches_normalise_on_the_device_exactly_as_before():
    image = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    out = network_inputs({"image": image, "masks": torch.rand(2, 4, 8, 8) > 0.5})
    # The loader workers used to send image.float() / 127.5 - 1 (data/transforms.py image_to_tensor).
    assert torch.equal(out["image"], image.float().div_(127.5).sub_(1.0))
    assert out["masks"].dtype == torch.float32


def _seg_nets(seed: int) -> Nets:
    torch.manual_seed(seed)
    g = nn.Conv2d(3, 4, 3, padding=1)  # no batch norm: micro-batches then see exactly the whole batch's function
    return Nets(generator=g, opt_generator=torch.optim.SGD(g.parameters(), lr=1.0))


@pytest.mark.parametrize("parts", [2, 4])
def test_micro_batches_give_the_whole_batchs_update(parts):
    cfg = _paper(seg_pretrain={"batch_size": 8, "accumulation": parts})
    whole = _paper(seg_pretrain={"batch_size": 8})
    g = torch.Generator().manual_seed(0)
    batch = {"image": torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8, generator=g),
             "masks": torch.rand(8, 4, 16, 16, generator=g) > 0.9, "fov": torch.ones(8, 1, 16, 16, dtype=torch.bool)}
    a, b = _seg_nets(1), _seg_nets(1)
    la = seg_step(a, batch, whole, nullcontext)
    lb = seg_step(b, batch, cfg, nullcontext)
    assert la["bce"] == pytest.approx(lb["bce"], rel=1e-6)
    for p, q in zip(a.generator.parameters(), b.generator.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def _joint_nets(seed: int) -> Nets:
    """Tiny G, attention grader and D in eval mode (BN on running statistics: micro-batches are then exact)."""
    torch.manual_seed(seed)
    g = LesionGenerator(GeneratorConfig(widths=(4, 8, 8, 16, 16))).eval()
    c = LesionGrader(GraderConfig(backbone="resnet18", att_channels=8)).eval()
    d = LesionDiscriminator(DiscriminatorConfig(widths=(4, 8, 8, 16, 16))).eval()
    sgd = [torch.optim.SGD(m.parameters(), lr=0.5) for m in (g, c, d)]
    return Nets(g, c, d, *sgd)


def test_joint_micro_batches_give_the_whole_batchs_update():
    g = torch.Generator().manual_seed(0)

    def batch(labels: str) -> dict:
        b = {"image": torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8, generator=g),
             "fov": torch.ones(4, 1, 64, 64, dtype=torch.bool)}
        if labels == "masks":
            b["masks"] = torch.rand(4, 4, 64, 64, generator=g) > 0.9
        elif labels == "grade":
            b["grade"] = torch.randint(0, 5, (4,), generator=g)
        return b

    p_batch, i_batch, real = batch("masks"), batch("grade"), batch("image")
    whole, parts = _paper(), _paper(joint={"accumulation": 2})
    a, b = _joint_nets(3), _joint_nets(3)
    la = joint_step(a, JointBatch(i_batch, p_batch, None, real), whole, nullcontext)
    lb = joint_step(b, JointBatch(i_batch, p_batch, None, real), parts, nullcontext)
    assert la.keys() == lb.keys() == {"focal", "bce_p", "bce_i", "disc", "adv"}
    for k in la:
        assert la[k] == pytest.approx(lb[k], rel=1e-4), k
    for kind in ("generator", "grader", "discriminator"):
        for (name, p), q in zip(getattr(a, kind).named_parameters(), getattr(b, kind).parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6, msg=f"{kind}.{name}")
