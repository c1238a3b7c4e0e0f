"""The DME head in training: datasets give ``dme`` (-1 where unknown), steps add its loss over the labelled images."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from drcollab.config import DiscriminatorConfig, GeneratorConfig, GraderConfig
from drcollab.constants import DME_TARGET_RISKS, MISSING_DME
from drcollab.data.records import Record
from drcollab.data.transforms import image_to_tensor
from drcollab.losses import dme_loss, focal_loss
from drcollab.models import LesionDiscriminator, LesionGenerator, LesionGrader
from drcollab.training.config import TrainConfig
from drcollab.training.datasets import FundusDataset
from drcollab.training.steps import JointBatch, Nets, grade_step, joint_step, network_inputs
from drcollab.training.validate import validate_grader

CFG = TrainConfig.model_validate({"data": {"pixel": [{"format": "generic", "root": "x"}],
                                           "image": [{"format": "generic", "root": "x"}]},
                                  "loss": {"dme_weight": 0.5}})


def _grader_nets(seed: int = 0) -> Nets:
    torch.manual_seed(seed)
    c = LesionGrader(GraderConfig(mode="ori", backbone="test_resnet", dme=True)).eval()  # BN on running statistics
    return Nets(grader=c, opt_grader=torch.optim.SGD(c.parameters(), lr=0.5))


def _batch(dme: list[int], seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    n = len(dme)
    return {"image": torch.randint(0, 256, (n, 3, 64, 64), dtype=torch.uint8, generator=g),
            "fov": torch.ones(n, 1, 64, 64, dtype=torch.bool),
            "grade": torch.randint(0, 5, (n,), generator=g), "dme": torch.tensor(dme)}


def test_grade_datasets_give_dme_and_minus_one_where_the_dataset_has_none():
    pre = SimpleNamespace(image=np.zeros((8, 8, 3), np.uint8), fov=np.ones((8, 8), bool), masks=None)
    records = [Record("a", Path("a.png"), grade=2, dme=2), Record("b", Path("b.png"), grade=1)]
    data = FundusDataset(records, lambda r: pre, labels="grade")
    assert [int(data[i]["dme"]) for i in range(2)] == [2, MISSING_DME]
    assert data[0]["dme"].dtype == torch.int64


def test_grade_datasets_give_a_partial_labels_code():
    pre = SimpleNamespace(image=np.zeros((8, 8, 3), np.uint8), fov=np.ones((8, 8), bool), masks=None)
    records = [Record("a", Path("a.png"), grade=0, dme_partial=(0, 1)), Record("b", Path("b.png"), grade=3, dme=2)]
    data = FundusDataset(records, lambda r: pre, labels="grade")
    assert [int(data[i]["dme"]) for i in range(2)] == [DME_TARGET_RISKS.index((0, 1)), 2]


def test_a_partial_dme_label_sends_a_gradient_to_the_dme_head():
    nets = _grader_nets()
    some, not_referable = DME_TARGET_RISKS.index((1, 2)), DME_TARGET_RISKS.index((0, 1))
    batch = _batch([some, not_referable, MISSING_DME, not_referable])
    out = nets.grader(network_inputs(batch)["image"])
    loss = dme_loss(out.dme_logits, batch["dme"])
    (weight,) = torch.autograd.grad(loss, [nets.grader.dme_classifier.weight], retain_graph=True)
    assert weight.abs().sum() > 0 and torch.isfinite(weight).all()
    # d loss / d bias_k sums (p_k - q_k) over the images, q the softmax renormalised over the allowed risks
    p = out.dme_logits.detach().softmax(1)
    q = torch.zeros_like(p)
    for i, risks in [(0, [1, 2]), (1, [0, 1]), (3, [0, 1])]:
        q[i, risks] = p[i, risks] / p[i, risks].sum()
    (bias_ce,) = torch.autograd.grad(dme_loss(out.dme_logits, batch["dme"], "ce"), [nets.grader.dme_classifier.bias])
    torch.testing.assert_close(bias_ce, (p - q)[[0, 1, 3]].sum(0) / 3)
    before = nets.grader.dme_classifier.weight.detach().clone()
    grade_step(nets, batch, CFG, nullcontext)
    assert not torch.equal(nets.grader.dme_classifier.weight, before)


def test_grade_step_adds_the_dme_loss_over_the_labelled_images_only():
    batch = _batch([0, MISSING_DME, 2, MISSING_DME])
    nets = _grader_nets()
    with torch.no_grad():
        out = nets.grader(network_inputs(batch)["image"])
    known = batch["dme"] >= 0
    want_dme = dme_loss(out.dme_logits[known], batch["dme"][known], "focal", CFG.loss.focal_gamma).item()
    want_focal = focal_loss(out.logits, batch["grade"]).item()
    got = grade_step(nets, batch, CFG, nullcontext)
    assert got.keys() == {"focal", "dme"}
    assert got["dme"] == pytest.approx(want_dme, rel=1e-5) and got["focal"] == pytest.approx(want_focal, rel=1e-5)


def test_a_batch_without_dme_labels_leaves_the_dme_head_untouched():
    nets = _grader_nets()
    before = nets.grader.dme_classifier.weight.detach().clone()
    got = grade_step(nets, _batch([MISSING_DME] * 4), CFG, nullcontext)
    assert got["dme"] == 0.0 and np.isfinite(got["focal"])
    assert torch.equal(nets.grader.dme_classifier.weight, before)  # zero gradient, plain SGD: no change
    assert all(torch.isfinite(p).all() for p in nets.grader.parameters())


def test_the_dme_weight_scales_the_dme_heads_update():
    a, b = _grader_nets(), _grader_nets()
    grade_step(a, _batch([0, 1, 2, 1]), CFG, nullcontext)
    grade_step(b, _batch([0, 1, 2, 1]), CFG.model_copy(update={"loss": CFG.loss.model_copy(
        update={"dme_weight": 1.0})}), nullcontext)
    start = _grader_nets().grader.dme_classifier.weight
    step_a = a.grader.dme_classifier.weight - start
    step_b = b.grader.dme_classifier.weight - start
    torch.testing.assert_close(step_b, 2 * step_a)  # the DR classifier does not feed the DME head


def test_joint_step_logs_the_dme_loss():
    torch.manual_seed(0)
    g = LesionGenerator(GeneratorConfig(widths=(4, 8, 8, 16, 16))).eval()
    c = LesionGrader(GraderConfig(backbone="test_resnet", att_channels=8, dme=True)).eval()
    d = LesionDiscriminator(DiscriminatorConfig(widths=(4, 8, 8, 16, 16))).eval()
    nets = Nets(g, c, d, *[torch.optim.SGD(m.parameters(), lr=0.1) for m in (g, c, d)])
    p_batch = _batch([0, 0], seed=1) | {"masks": torch.rand(2, 4, 64, 64) > 0.9}
    real = {k: v for k, v in _batch([0, 0], seed=2).items() if k in ("image", "fov")}  # D's real view of X^P
    losses = joint_step(nets, JointBatch(_batch([1, MISSING_DME]), p_batch, None, real), CFG, nullcontext)
    assert losses.keys() == {"focal", "dme", "bce_p", "bce_i", "disc", "adv"}
    assert all(np.isfinite(v) for v in losses.values())


def test_validation_reports_dme_and_joint_accuracy_over_the_images_with_a_known_dme():
    rng = np.random.default_rng(0)
    images = {f"r{i}": rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for i in range(6)}
    dmes = [0, None, 2, 1, None, 0]
    grades = [0, 1, 2, 3, 4, 2]
    records = [Record(f"r{i}", Path(f"r{i}.png"), grade=grades[i], dme=dmes[i]) for i in range(6)]
    cache = SimpleNamespace(get=lambda r: SimpleNamespace(image=images[r.name]))
    c = _grader_nets().grader
    got = validate_grader(c, None, records, cache, torch.device("cpu"), nullcontext, batch_size=4)
    with torch.no_grad():
        out = c(torch.stack([image_to_tensor(images[r.name]) for r in records]))
    dr_right = out.logits.argmax(1).numpy() == np.asarray(grades)
    known = [i for i, d in enumerate(dmes) if d is not None]
    dme_right = out.dme_logits.argmax(1).numpy()[known] == np.asarray([dmes[i] for i in known])
    assert got["accuracy"] == pytest.approx(dr_right.mean())
    assert got["dme_accuracy"] == pytest.approx(dme_right.mean())  # the unknown DME is not counted as a miss
    assert got["joint_accuracy"] == pytest.approx((dme_right & dr_right[known]).mean())
    assert c.training is False  # the grader's mode is restored


def test_validation_of_a_grader_without_a_dme_head_has_no_dme_keys():
    torch.manual_seed(0)
    c = LesionGrader(GraderConfig(mode="ori", backbone="test_resnet", dme=False))
    records = [Record("a", Path("a.png"), grade=1, dme=1)]
    cache = SimpleNamespace(get=lambda r: SimpleNamespace(image=np.zeros((64, 64, 3), np.uint8)))
    got = validate_grader(c, None, records, cache, torch.device("cpu"), nullcontext)
    assert got.keys() == {"accuracy", "kappa"} and c.training
