"""Stage 2 with G at its own size (training/views.py, the ``TwoSizes`` route of training/steps.py): α sampled at a
crop's pixels, the crop dataset, the step's gradient rules and a tiny run whose bundle keeps G's size."""

from __future__ import annotations

import contextlib
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError
from training_helpers import reached, tiny_config

from drcollab.config import DiscriminatorConfig, GeneratorConfig, GraderConfig
from drcollab.data.records import Record
from drcollab.models import LesionDiscriminator, LesionGenerator, LesionGrader, load_model
from drcollab.training import steps
from drcollab.training.config import TrainConfig
from drcollab.training.pseudo import alpha_in_crops, teacher_attention
from drcollab.training.steps import JointBatch, Nets, TwoSizes, disc_update, joint_losses, joint_step
from drcollab.training.trainer import run_training
from drcollab.training.views import CropDataset

NO_AUTOCAST = contextlib.nullcontext
SOURCES = {"pixel": [{"format": "generic", "root": "unused"}], "image": [{"format": "generic", "root": "unused"}]}
KINDS = ("generator", "grader", "discriminator")


def _reference(alpha: torch.Tensor, side: int, top: int, left: int, crop: int, flip: tuple[bool, bool]) -> torch.Tensor:
    """α up-sampled to the image's side, the crop cut out, then flipped: what alpha_in_crops must equal."""
    up = F.interpolate(alpha, size=(side, side), mode="bilinear", align_corners=False)
    out = up[..., top : top + crop, left : left + crop]
    dims = [d for d, on in zip((-2, -1), flip, strict=True) if on]
    return out.flip(dims) if dims else out


@pytest.mark.parametrize("flip", [(False, False), (True, False), (False, True), (True, True)])
def test_alpha_in_crops_equals_upsampling_then_cutting_the_crop(flip: tuple[bool, bool]) -> None:
    torch.manual_seed(0)
    side, crop = 48, 20
    alpha = torch.rand(3, 4, 12, 12)  # f_low's grid: a quarter of the image side
    corners = [(0, 0), (7, 21), (28, 28)]
    box = torch.tensor([[t / side, s / side, crop / side] for t, s in corners])
    flips = torch.tensor([flip] * 3, dtype=torch.float32)
    got = alpha_in_crops(alpha, box, flips, crop)
    assert got.shape == (3, 4, crop, crop)
    for k, (top, left) in enumerate(corners):
        torch.testing.assert_close(got[k], _reference(alpha[k : k + 1], side, top, left, crop, flip)[0])


def test_alpha_in_crops_at_g_s_size_three_times_the_graders() -> None:
    """G's image is 3x the grader's (1152 vs 384): α's grid spans both, so the crop box is read in G's pixels."""
    torch.manual_seed(1)
    alpha = torch.rand(1, 4, 8, 8)  # grader 32 px -> G 96 px
    got = alpha_in_crops(alpha, torch.tensor([[30 / 96, 12 / 96, 24 / 96]]), torch.zeros(1, 2), 24)
    torch.testing.assert_close(got, _reference(alpha, 96, 30, 12, 24, (False, False)))


def _pre(image: np.ndarray, fov: np.ndarray) -> SimpleNamespace:
    return SimpleNamespace(image=image, fov=fov, masks=None)


def test_crop_dataset_cuts_gs_window_says_where_and_carries_the_teachers_whole_image(tmp_path) -> None:
    rng = np.random.default_rng(0)
    seg = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    fov = np.zeros((64, 64), dtype=bool)
    fov[20:40, 24:44] = True
    small = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    masks = rng.integers(0, 256, (4, 32, 32), dtype=np.uint8)
    record = Record(name="a", image_path=tmp_path / "a.png", grade=0, grade_scale="icdr")
    ds = CropDataset([record], lambda r: _pre(seg, fov), 16,
                     teacher=(lambda r: _pre(small, np.ones((32, 32), bool)), lambda r: (masks, None)))
    flipped = set()
    for seed in range(12):
        item = ds[(0, seed)]
        top, left, s = (item["box"] * 64).round().long().tolist()
        assert s == 16
        assert 20 <= top + 8 < 40 and 24 <= left + 8 < 44  # centred on a field-of-view pixel
        image, crop_fov = item["image"], item["fov"]
        dims = [d for d, on in zip((1, 2), item["flip"].bool().tolist(), strict=True) if on]
        flipped.add(tuple(item["flip"].tolist()))
        image, crop_fov = (image.flip(dims), crop_fov.flip(dims)) if dims else (image, crop_fov)
        y0, x0, y1, x1 = max(top, 0), max(left, 0), min(top + 16, 64), min(left + 16, 64)
        inside = image[:, y0 - top : y1 - top, x0 - left : x1 - left]
        assert torch.equal(inside, torch.from_numpy(seg[y0:y1, x0:x1].transpose(2, 0, 1).copy()))
        assert torch.equal(crop_fov[0, y0 - top : y1 - top, x0 - left : x1 - left], torch.from_numpy(fov[y0:y1, x0:x1]))
        assert torch.equal(item["teacher_image"], torch.from_numpy(small.transpose(2, 0, 1).copy()))
        assert torch.equal(item["teacher_masks"], torch.from_numpy(masks))
        assert item["teacher_fov"].shape == (1, 32, 32) and bool(item["teacher_fov"].all())
        assert item["presence"].tolist() == [0, 0, 0, 0]  # grade 0: every lesion absent
    assert len(flipped) > 1
    assert torch.equal(ds[(0, 3)]["image"], ds[(0, 3)]["image"])  # a pure function of (index, seed)
    # Without the teacher (D's real view of X^P): the same crop of the same draw, and nothing else.
    alone = CropDataset([Record(name="a", image_path=tmp_path / "a.png")], lambda r: _pre(seg, fov), 16)[(0, 3)]
    assert alone.keys() == {"image", "fov", "box", "flip", "index"}
    assert all(torch.equal(alone[k], ds[(0, 3)][k]) for k in ("image", "fov", "box", "flip"))


def _nets() -> Nets:
    torch.manual_seed(0)
    g = LesionGenerator(GeneratorConfig(widths=(4, 8, 8, 16, 16)))
    c = LesionGrader(GraderConfig(mode="attention", backbone="resnet18", att_channels=8))
    d = LesionDiscriminator(DiscriminatorConfig(widths=(4, 8, 8, 16, 16)))
    opts = [torch.optim.Adam(n.parameters(), lr=1e-3) for n in (g, c, d)]
    return Nets(g, c, d, *opts)


def _cfg(**joint: object) -> TrainConfig:
    return TrainConfig.model_validate({"data": SOURCES, "joint": {"grade_to_generator": False, **joint}})


def _batch(grades: list[int]) -> JointBatch:
    """X^I at the grader's 32 px, X^P crops (32 px), X^I crops at G's size (32 px) with the teacher's 32-px image,
    and D's real view: crops of X^P cut as the X^I crops are."""
    g = torch.Generator().manual_seed(0)
    n = len(grades)
    fov = torch.ones(1, 1, 32, 32, dtype=torch.bool)
    presence = torch.tensor([[0] * 4 if y == 0 else [-1] * 4 for y in grades])
    p = {"image": torch.rand(2, 3, 32, 32, generator=g) * 2 - 1, "fov": fov.expand(2, -1, -1, -1),
         "masks": (torch.rand(2, 4, 32, 32, generator=g) > 0.9).float()}
    c = {"image": torch.rand(n, 3, 32, 32, generator=g) * 2 - 1, "fov": fov.expand(n, -1, -1, -1),
         "box": torch.tensor([[0.25, 0.25, 0.5]] * n), "flip": torch.zeros(n, 2),
         "teacher_image": torch.rand(n, 3, 32, 32, generator=g) * 2 - 1,
         "teacher_masks": torch.rand(n, 4, 32, 32, generator=g), "teacher_fov": fov.expand(n, -1, -1, -1),
         "grade": torch.tensor(grades), "presence": presence}
    i = {"image": torch.rand(n, 3, 32, 32, generator=g) * 2 - 1, "fov": fov.expand(n, -1, -1, -1),
         "g_masks": torch.rand(n, 4, 32, 32, generator=g), "grade": torch.tensor(grades), "presence": presence}
    real = {"image": torch.rand(2, 3, 32, 32, generator=g) * 2 - 1, "fov": fov.expand(2, -1, -1, -1),
            "box": torch.tensor([[0.0, 0.5, 0.5]] * 2), "flip": torch.zeros(2, 2)}
    return JointBatch(i, p, c, real)


def test_no_loss_links_the_grader_and_g_and_the_teacher_pass_changes_nothing() -> None:
    cfg = _cfg(pseudo_mask="refined", zero_absent=True, adversarial=True)
    nets = _nets()
    b = _batch([0, 2])
    buffers = [x.clone() for x in nets.grader.buffers()]
    alpha = teacher_attention(nets.grader, b.crops)
    assert not alpha.requires_grad and nets.grader.training
    assert all(torch.equal(x, y) for x, y in zip(buffers, nets.grader.buffers(), strict=True))
    _, [real_masks] = disc_update(nets, [(b.real, b.crops)], NO_AUTOCAST)
    losses, _ = joint_losses(nets, b, cfg, NO_AUTOCAST, TwoSizes, real_masks)
    assert reached(losses["focal"], nets) == {"grader"}
    assert reached(losses["bce_p"], nets) == {"generator"}
    assert reached(losses["bce_i"], nets) == {"generator"}  # the teacher's targets are detached
    assert {"generator"} <= reached(losses["adv"], nets) and "grader" not in reached(losses["adv"], nets)


def test_a_grade_0_crop_is_taught_all_zero_and_a_lesion_crop_is_not(monkeypatch) -> None:
    """With zero_absent the healthy image's crop targets are 0 whatever the teacher says; G's loss sees them."""
    cfg = _cfg(pseudo_mask="attention", zero_absent=True, adversarial=False)
    nets = _nets()
    nets.discriminator = nets.opt_discriminator = None
    b = _batch([0, 3])
    seen = {}
    original = steps.pseudo_targets

    def spy(*args: object) -> tuple[torch.Tensor, torch.Tensor]:
        seen["out"] = original(*args)
        return seen["out"]

    monkeypatch.setattr(steps, "pseudo_targets", spy)
    joint_losses(nets, b, cfg, NO_AUTOCAST, TwoSizes, None)
    target, _ = seen["out"]
    assert target.shape == (2, 4, 32, 32)
    assert target[0].abs().sum() == 0 and target[1].sum() > 0


@pytest.mark.parametrize("accumulation", [1, 2])
def test_two_size_step_moves_g_grader_and_d_and_ds_branches_are_crops(accumulation: int) -> None:
    nets = _nets()
    b = _batch([1, 2, 3, 4])
    calls = []
    forward = nets.discriminator.forward
    nets.discriminator.forward = lambda x, m: calls.append(x.detach().clone()) or forward(x, m)
    before = {k: [q.detach().clone() for q in getattr(nets, k).parameters()] for k in KINDS}
    losses = joint_step(nets, b, _cfg(adversarial=True, accumulation=accumulation), NO_AUTOCAST, TwoSizes)
    assert {"focal", "bce_p", "bce_i", "adv", "disc"} <= set(losses)
    for k in KINDS:
        assert any(not torch.equal(x, y) for x, y in zip(before[k], getattr(nets, k).parameters(), strict=True)), k
    rows = [row for x in calls for row in x]
    assert any(torch.equal(row, crop) for row in rows for crop in b.crops["image"])  # D's fakes: X^I crops
    assert any(torch.equal(row, real) for row in rows for real in b.real["image"])  # D's reals: the real view
    assert not any(torch.equal(row, x) for row in rows for x in [*b.image["image"], *b.pixel["image"]])


def test_two_sizes_need_no_grading_gradient_into_g_and_a_crop(synth_root, tmp_path) -> None:
    with pytest.raises(ValidationError, match="joint.grade_to_generator false"):
        tiny_config(synth_root, tmp_path, data={"seg_size": 128}, seg_pretrain={"augment": {"crop": 64}})
    with pytest.raises(ValidationError, match="seg_pretrain.augment.crop"):
        tiny_config(synth_root, tmp_path, data={"seg_size": 128}, joint={"grade_to_generator": False})


def test_a_tiny_two_size_run_trains_g_at_its_size_and_its_bundle_tiles_it(synth_root, tmp_path) -> None:
    cfg = tiny_config(synth_root, tmp_path / "cache", data={"seg_size": 128},
                      seg_pretrain={"augment": {"crop": 64, "lesion_crops": 0.5, "crop_centre": "fov"}},
                      joint={"grade_to_generator": False, "zero_absent": True, "pseudo_mask": "refined"})
    bundle_dir = run_training(cfg, tmp_path / "run")
    info = json.loads((bundle_dir / "bundle.json").read_text())
    assert info["parts"]["generator"]["stage"] == "joint" and info["generator_preprocess"]["size"] == 128
    assert info["tile"] == 64  # G's last training saw 64-px crops at 128 px: the bundle tiles it so
    start = load_model(tmp_path / "run/models/seg_pretrain/generator")
    end = load_model(tmp_path / "run/models/joint/generator")
    assert any(not torch.equal(a, b) for a, b in zip(start.state_dict().values(), end.state_dict().values(),
                                                       strict=True))
    metrics = (tmp_path / "run/metrics.csv").read_text()
    assert "joint" in metrics and "train/bce_i" in metrics and "val/ap_mean" in metrics
