"""Tiny convergence tests on synthetic tensors: each network (and the ordinal grade head) learns an easy task.

They prove the gradients flow the right way end to end (after MONAI's 40-step convergence tests).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from drcollab.config import DiscriminatorConfig, GeneratorConfig, GraderConfig
from drcollab.losses import discriminator_loss, focal_loss, masked_bce_with_logits
from drcollab.models import LesionDiscriminator, LesionGenerator, LesionGrader
from drcollab.models.ordinal import OrdinalHead

SIZE = 64
COLOURS = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]])  # one per lesion


def blobs(n: int, lesions: int, gen: torch.Generator, count: int = 3) -> torch.Tensor:
    """Binary masks ``(n, lesions, SIZE, SIZE)`` with ``count`` random discs per lesion."""
    yy, xx = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    masks = torch.zeros(n, lesions, SIZE, SIZE)
    for i in range(n):
        for lesion in range(lesions):
            for _ in range(count):
                cy, cx = torch.randint(6, SIZE - 6, (2,), generator=gen).tolist()
                r = torch.randint(2, 6, (1,), generator=gen).item()
                masks[i, lesion] = masks[i, lesion].maximum((((yy - cy) ** 2 + (xx - cx) ** 2) <= r * r).float())
    return masks


def paint(masks: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """RGB images ``(n, 3, SIZE, SIZE)``: each lesion's discs in its own colour over noise."""
    colours = COLOURS[: masks.shape[1]]  # (L, 3)
    image = torch.einsum("nlhw,lc->nchw", masks, colours)
    return image + 0.1 * torch.randn(image.shape, generator=gen)


def fit(model: torch.nn.Module, loss_fn: Callable[[], torch.Tensor], steps: int, lr: float) -> list[float]:
    """``steps`` Adam steps on ``loss_fn()``; the loss of each step."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss = loss_fn()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_generator_fits_two_synthetic_images() -> None:
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    masks = blobs(2, 4, gen)
    images = paint(masks, gen)
    model = LesionGenerator(GeneratorConfig(widths=(8, 16, 16, 32, 32)))
    losses = fit(model, lambda: masked_bce_with_logits(model(images), masks), 50, 1e-2)
    assert losses[-1] < 0.15 * losses[0], losses[::10]


def settle_batch_norm(model: torch.nn.Module, *inputs: torch.Tensor, passes: int = 30) -> None:
    """Let BN running statistics catch up with weights that moved fast (30 steps at a high rate)."""
    model.train()
    with torch.no_grad():
        for _ in range(passes):
            model(*inputs)


def test_grader_separates_two_easy_classes() -> None:
    gen = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    labels = torch.tensor([0, 1] * 4)
    # Grade 1 images have lesions, grade 0 images have none; the masks mark the lesions.
    masks = blobs(8, 4, gen) * labels.view(-1, 1, 1, 1)
    images = paint(masks, gen)
    model = LesionGrader(GraderConfig(backbone="test_resnet", mode="attention", att_channels=8, num_grades=2))
    losses = fit(model, lambda: focal_loss(model(images, masks).logits, labels, gamma=2.0), 30, 2e-3)
    settle_batch_norm(model, images, masks)
    with torch.no_grad():
        predicted = model.eval()(images, masks).logits.argmax(1)
    assert torch.equal(predicted, labels), (predicted, losses[::5])
    assert losses[-1] < 0.25 * losses[0], losses[::5]


def test_ordinal_head_learns_a_one_dimensional_ordinal_problem() -> None:
    start = time.perf_counter()
    torch.manual_seed(0)
    x = torch.rand(512, 1) * 6 - 3
    y = torch.bucketize(x[:, 0], torch.tensor([-1.8, -0.6, 0.6, 1.8]))  # 5 ordered grades along x
    model = torch.nn.Sequential(torch.nn.Linear(1, 8), torch.nn.Tanh(), OrdinalHead(8, 5))
    losses = fit(model, lambda: focal_loss(model(x), y), 150, 0.05)
    accuracy = (model(x).argmax(1) == y).float().mean().item()
    assert losses[-1] < 0.2 * losses[0] and accuracy > 0.9, (losses[::30], accuracy)
    assert time.perf_counter() - start < 2.0


def blurred(masks: torch.Tensor) -> torch.Tensor:
    """Gaussian blur (sigma 1.5 px): the soft edges of predicted masks, unlike binary ground truth."""
    x = torch.arange(-4, 5, dtype=torch.float32)
    k = torch.exp(-(x**2) / (2 * 1.5**2))
    k = k / k.sum()
    c = masks.shape[1]
    out = F.conv2d(masks, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), padding=(0, 4), groups=c)
    return F.conv2d(out, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), padding=(4, 0), groups=c)


def real_and_fake_batch(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` sharp (real) then ``n`` blurred (fake) mask stacks in one batch, with faint-noise images."""
    masks = torch.cat([blobs(n, 4, gen, count=2), blurred(blobs(n, 4, gen, count=2))])  # (2n, 4, H, W)
    return 0.1 * torch.randn(2 * n, 3, SIZE, SIZE, generator=gen), masks


def test_discriminator_tells_sharp_masks_from_blurred_ones() -> None:
    gen = torch.Generator().manual_seed(2)
    torch.manual_seed(2)
    model = LesionDiscriminator(DiscriminatorConfig(widths=(8, 8, 16, 16, 32)))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(40):
        # One call on real and fake together: train-mode BN over an all-real or all-fake batch would
        # normalise away the very difference D has to see.
        logits = model(*real_and_fake_batch(4, gen))
        loss = discriminator_loss(logits[:4], logits[4:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    settle_batch_norm(model, *real_and_fake_batch(16, gen))
    with torch.no_grad():
        logits = model.eval()(*real_and_fake_batch(16, gen))  # held-out masks
    accuracy = ((logits[:16] > 0).float().mean() + (logits[16:] < 0).float().mean()) / 2
    assert accuracy >= 0.9, (accuracy, loss.item())
