"""One optimisation step of each stage: ``seg_step`` (1a), ``grade_step`` (1b), ``joint_step`` (2).

Stage 2 has one route: :func:`joint_step` updates D once (:func:`disc_update`), then G and the grader from
:func:`joint_losses`, which is what G's loss in stage 2 is. What differs between G on the grader's images and G
on crops at its own size is the stage's ``Route`` (:class:`OneSize`, :class:`TwoSizes`), chosen once at the
stage's start; the pseudo-mask rule lives in ``training/pseudo.py``, the views in ``training/views.py``.

Each step returns its losses as floats for logging. A non-finite loss raises
:class:`NonFiniteLoss` *before* any optimizer step, so the weights never see it. Batches arrive on the
device as the loaders make them (uint8 images, boolean masks, uint8 levels of a frozen G's masks) and are
normalised here; stages 1a and 1b
split them into ``accumulation`` micro-batches whose gradients add up to the whole batch's.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from drcollab.data.transforms import image_to_tensor
from drcollab.losses import (
    discriminator_loss,
    dme_loss,
    focal_loss,
    generator_adversarial_loss,
    mask_loss,
    segmentation_loss,
)
from drcollab.models.grader import GraderOutput
from drcollab.models.lesion_stats import lesion_statistics
from drcollab.models.mask_path import dequantise
from drcollab.models.memory import frozen_buffers
from drcollab.training.config import TrainConfig
from drcollab.training.pseudo import alpha_in_crops, pseudo_targets, teacher_attention

Autocast = Callable[[], AbstractContextManager]


class NonFiniteLoss(ArithmeticError):
    """A loss was NaN or infinite; ``name`` says which one."""

    def __init__(self, name: str, value: float) -> None:
        self.name, self.value = name, value
        super().__init__(f"non-finite loss {name} = {value}")


def _finite(losses: dict[str, torch.Tensor]) -> dict[str, float]:
    values = {k: float(v.detach()) for k, v in losses.items()}
    for name, value in values.items():
        if not torch.isfinite(torch.tensor(value)):
            raise NonFiniteLoss(name, value)
    return values


@dataclass
class Nets:
    """The networks of a stage (absent ones are None) and their optimizers."""

    generator: nn.Module | None = None
    grader: nn.Module | None = None
    discriminator: nn.Module | None = None
    opt_generator: torch.optim.Optimizer | None = None
    opt_grader: torch.optim.Optimizer | None = None
    opt_discriminator: torch.optim.Optimizer | None = None
    scaler: torch.amp.GradScaler | None = None  # fp16 autocast only (runtime.amp, drcollab/precision.py)


def network_inputs(batch: dict) -> dict:
    """uint8 images -> float in about [-1, 1], boolean masks -> float and a frozen G's uint8 mask levels -> its
    probabilities, on the batch's device."""
    out = dict(batch)
    if batch["image"].dtype == torch.uint8:
        out["image"] = image_to_tensor(batch["image"])  # (B, 3, H, W), keeps channels_last
    if "masks" in batch:
        out["masks"] = batch["masks"].float()  # (B, L, H, W)
    if "g_masks" in batch:
        out["g_masks"] = dequantise(batch["g_masks"])  # (B, L, H, W), models/mask_path.py
    return out


def micro_batches(batch: dict, parts: int) -> list[dict]:
    """``batch`` cut into ``parts`` equal micro-batches along dim 0, each normalised by :func:`network_inputs`."""
    n = len(batch["image"])
    if n % parts:
        raise ValueError(f"a batch of {n} images does not split into {parts} micro-batches")
    size = n // parts
    chunks = [{k: v[i * size : (i + 1) * size] if torch.is_tensor(v) else v for k, v in batch.items()}
              for i in range(parts)]
    return [network_inputs(c) for c in chunks]


def _backward(loss: torch.Tensor, scaler: torch.amp.GradScaler | None) -> None:
    (loss if scaler is None else scaler.scale(loss)).backward()


def _step(optimizers: list[torch.optim.Optimizer | None], scaler: torch.amp.GradScaler | None) -> None:
    """Step each optimizer; with a scaler, one that saw inf/NaN gradients skips its step (fp16 overflow)."""
    for opt in optimizers:
        if opt is not None:
            opt.step() if scaler is None else scaler.step(opt)


def _accumulated(
    model: nn.Module, opt: torch.optim.Optimizer, batch: dict, parts: int, scaler: torch.amp.GradScaler | None,
    loss_of: Callable[[dict], tuple[dict[str, torch.Tensor], torch.Tensor]],
) -> dict[str, float]:
    """One update of ``model`` from ``batch`` in ``parts`` micro-batches: the mean of their losses' gradients.

    ``loss_of`` gives a micro-batch's named losses (logged) and their total (back-propagated). DDP synchronises
    the gradients once, at the last micro-batch's backward.
    """
    opt.zero_grad(set_to_none=True)
    sums: dict[str, float] = {}
    chunks = micro_batches(batch, parts)
    for i, chunk in enumerate(chunks):
        last = i == len(chunks) - 1
        sync = nullcontext() if last or not isinstance(model, DistributedDataParallel) else model.no_sync()
        with sync:
            losses, total = loss_of(chunk)
            for name, value in _finite(losses).items():
                sums[name] = sums.get(name, 0.0) + value
            _backward(total / parts if parts > 1 else total, scaler)
    _step([opt], scaler)
    if scaler is not None:
        scaler.update()
    return {name: value / parts for name, value in sums.items()}


def g_mask_loss(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """L_CE of Eq. 3 as configured (``loss.mask_loss``), over the pixels ``valid`` weights (see :func:`loss_fov`)."""
    loss = cfg.loss
    return mask_loss(logits, target, valid, loss.mask_loss, loss.dice_weight, loss.pos_weight)


def loss_fov(fov: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """Where G's mask losses count, ``(B, 1, H, W)``: the field of view, or every pixel (``loss.mask_fov: false``,
    the paper)."""
    return fov if cfg.loss.mask_fov else torch.ones_like(fov)


def seg_step(nets: Nets, batch: dict, cfg: TrainConfig, autocast: Autocast) -> dict[str, float]:
    """Stage 1a: G's mask loss on pixel-labelled images, inside the FOV (Eq. 3 without the adversarial term)."""

    def loss_of(b: dict) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        with autocast():
            logits = nets.generator(b["image"])  # (B, L, H, W)
        loss = g_mask_loss(logits.float(), b["masks"], loss_fov(b["fov"], cfg), cfg)
        return {"bce": loss}, loss

    parts = cfg.seg_pretrain.accumulation
    return _accumulated(nets.generator, nets.opt_generator, batch, parts, nets.scaler, loss_of)


def grade_step(nets: Nets, batch: dict, cfg: TrainConfig, autocast: Autocast) -> dict[str, float]:
    """Stage 1b: the plain ("ori") grader with focal loss on grade-labelled images (and its DME head's loss); with
    ``grader.lesion_stats`` it also takes the frozen G's lesion statistics that came with the batch."""

    def loss_of(b: dict) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        with autocast():
            out = nets.grader(b["image"], None, b.get("stats"))
        losses = grader_losses(out, b, cfg)
        return losses, grader_total(losses, cfg)

    parts = cfg.grade_pretrain.accumulation
    return _accumulated(nets.grader, nets.opt_grader, batch, parts, nets.scaler, loss_of)


def grader_losses(out: GraderOutput, batch: dict, cfg: TrainConfig) -> dict[str, torch.Tensor]:
    """``focal`` on the DR grade and, with a DME head, ``dme`` over the images whose DME is known (``dme`` >= 0)."""
    loss = cfg.loss
    losses = {"focal": focal_loss(out.logits.float(), batch["grade"], loss.focal_gamma, loss.focal_alpha)}
    if out.dme_logits is not None:
        losses["dme"] = dme_loss(out.dme_logits.float(), batch["dme"], loss.dme_loss, loss.focal_gamma)
    return losses


def grader_total(losses: dict[str, torch.Tensor], cfg: TrainConfig) -> torch.Tensor:
    """What the grader's losses add up to: ``focal + loss.dme_weight * dme``."""
    return losses["focal"] + cfg.loss.dme_weight * losses["dme"] if "dme" in losses else losses["focal"]


@dataclass
class JointBatch:
    """One stage-2 step's batches (``training/stages.py`` draws them, ``training/views.py`` samples the views).

    Attributes:
        image: X^I at the grader's size, with grades and presence codes (and a frozen or the start G's ``g_masks``
            and ``stats``, ``training/mask_inputs.py``).
        pixel: X^P for G's supervised BCE (None when G does not train).
        crops: Two sizes: crops of X^I at G's size, G's X^I inputs (None at one size, where G sees ``image``).
        real: D's real view of X^P, drawn by the sampler of G's X^I inputs (None without D).
    """

    image: dict
    pixel: dict | None = None
    crops: dict | None = None
    real: dict | None = None

    def split(self, parts: int) -> list[JointBatch]:
        """``parts`` micro-batches, each normalised (:func:`micro_batches`)."""
        fields = [None if b is None else micro_batches(b, parts) for b in (self.image, self.pixel, self.crops,
                                                                             self.real)]
        return [JointBatch(*(None if f is None else f[k] for f in fields)) for k in range(parts)]


class OneSize:
    """Stage 2 with G on the grader's images (the paper): G's masks feed the grader, with the grading gradient
    when ``joint.grade_to_generator``, and α of the grader's own pass makes G's pseudo masks."""

    @staticmethod
    def generator_inputs(b: JointBatch) -> dict:
        """The X^I images G trains on (and D's fakes)."""
        return b.image

    @staticmethod
    def grader_masks(b: JointBatch, masks: torch.Tensor, cfg: TrainConfig) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The masks (and ``grader.lesion_stats``' statistics) the grader reads with ``b.image``."""
        masks = masks if cfg.joint.grade_to_generator else masks.detach()
        return masks, lesion_statistics(masks) if cfg.grader.lesion_stats else None  # (B, L, H, W), (B, S)

    @staticmethod
    def attention(nets: Nets, b: JointBatch, out: GraderOutput) -> torch.Tensor:
        """α for the pseudo masks of :meth:`generator_inputs`, detached."""
        return out.attention.detach()


class TwoSizes:
    """Stage 2 with G on crops at its own size (``training/views.py``): the grader reads the masks of the G the
    stage started with (no loss links the two), and a teacher pass's α, sampled at each crop's pixels, makes the
    crops' pseudo masks (``training/pseudo.py``)."""

    @staticmethod
    def generator_inputs(b: JointBatch) -> dict:
        return b.crops

    @staticmethod
    def grader_masks(b: JointBatch, masks: torch.Tensor, cfg: TrainConfig) -> tuple[torch.Tensor, torch.Tensor | None]:
        return b.image["g_masks"], b.image.get("stats")

    @staticmethod
    def attention(nets: Nets, b: JointBatch, out: GraderOutput) -> torch.Tensor:
        crops = b.crops
        alpha = teacher_attention(nets.grader, crops)  # (B, L, h, w) of the whole images, no gradient
        return alpha_in_crops(alpha, crops["box"], crops["flip"], crops["image"].shape[-1])  # (B, L, c, c)


Route = type[OneSize] | type[TwoSizes]


def joint_route(cfg: TrainConfig) -> Route:
    """How stage 2 feeds G, chosen once at the stage's start: :class:`TwoSizes` when G trains at its own size
    (``TrainConfig.two_size_joint``), else :class:`OneSize`."""
    return TwoSizes if cfg.two_size_joint else OneSize


def joint_step(
    nets: Nets, batch: JointBatch, cfg: TrainConfig, autocast: Autocast, route: Route | None = None
) -> dict[str, float]:
    """Stage 2: one joint, end-to-end step. Updates, in order:

    1. D (``joint.adversarial``), once for the whole batch (:func:`disc_update`): real = (D's view of X^P, G's
       masks), fake = (G's X^I inputs, G's masks), on G's masks from a no-grad pass; D's optimizer steps.
    2. Per micro-batch (``joint.accumulation``), :func:`joint_losses`: G on X^P and its X^I inputs (the grader's
       images, or crops at G's size: ``route``), the grader on X^I, the pseudo masks, G's adversarial term judged by
       the just-updated D; one backward pass.
    3. G's and the grader's optimizers step once.
    """
    route = route or joint_route(cfg)
    parts = batch.split(cfg.joint.accumulation)
    disc, reals = None, [None] * len(parts)
    if nets.discriminator is not None:
        disc, reals = disc_update(nets, [(p.real, route.generator_inputs(p)) for p in parts], autocast)
    for opt in (nets.opt_generator, nets.opt_grader):
        if opt is not None:
            opt.zero_grad(set_to_none=True)
    sums: dict[str, float] = {}
    for part, real_masks in zip(parts, reals, strict=True):
        losses, total = joint_losses(nets, part, cfg, autocast, route, real_masks)
        for name, value in _finite(losses).items():
            sums[name] = sums.get(name, 0.0) + value
        _backward(total / len(parts) if len(parts) > 1 else total, nets.scaler)
    _step([nets.opt_generator, nets.opt_grader], nets.scaler)
    if nets.scaler is not None:
        nets.scaler.update()  # once per step, after every optimizer of it (D's included) stepped
    values = {name: v / len(parts) for name, v in sums.items()}
    return values if disc is None else {**values, "disc": disc}


def joint_losses(
    nets: Nets, b: JointBatch, cfg: TrainConfig, autocast: Autocast, route: Route, real_masks: torch.Tensor | None,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """G's and the grader's losses in stage 2 on one (micro-)batch, and their total:

    ``focal(C) [+ loss.dme_weight * dme(C)] + adv_weight * L_adv(G) + lambda * [BCE(G(X^P), s^P) + semi_weight *
    w.BCE(G(X^I), s~)]``

    - ``focal`` (and ``dme``) reach the grader and, at one size with ``joint.grade_to_generator``, G through its
      masks;
    - ``bce_p``: G on X^P against the ground truth; ``bce_i`` (``joint.semi``): G on its X^I inputs against the
      pseudo masks s~ with per-pixel weights w (``training/pseudo.py``, detached): both reach G only, over the
      field of view (``loss.mask_loss`` may add Dice);
    - ``adv``: G's non-saturating adversarial term on its X^I inputs' masks, judged by D beside ``real_masks``
      (G's masks of D's real view, from :func:`disc_update`); it reaches G (D's weights do not step after it).

    With G frozen (``joint.train_generator: false``: its masks came with the batch) or absent (``ori``), only the
    grader's losses.
    """
    j, G = cfg.joint, nets.generator
    if G is None or not j.train_generator:
        masks = None if G is None else b.image.get("g_masks")
        _, losses, total = _grader_part(nets, b.image, masks, b.image.get("stats"), cfg, autocast)
        return losses, total
    x, x_p = route.generator_inputs(b), b.pixel["image"]
    with autocast():
        logits = G(torch.cat([x_p, x["image"]])).float()  # (B_p + B, L, H, W)
    logits_p, logits_x = logits[: len(x_p)], logits[len(x_p) :]
    masks_x = torch.sigmoid(logits_x)
    out, losses, total = _grader_part(nets, b.image, *route.grader_masks(b, masks_x, cfg), cfg, autocast)
    ce = losses["bce_p"] = g_mask_loss(logits_p, b.pixel["masks"], loss_fov(b.pixel["fov"], cfg), cfg)
    if j.semi:
        with autocast():
            alpha = route.attention(nets, b, out)
        target, weight = pseudo_targets(alpha, masks_x, loss_fov(x["fov"], cfg), x.get("presence"), j)
        losses["bce_i"] = g_mask_loss(logits_x, target, weight, cfg)
        ce = ce + j.semi_weight * losses["bce_i"]
    adv = torch.zeros((), device=x_p.device)
    if nets.discriminator is not None:
        with autocast():  # real and fake in one batch, as in D's update, so D's BN sees alike batches
            judged = nets.discriminator(torch.cat([b.real["image"], x["image"]]),
                                        torch.cat([real_masks, masks_x])).float()
        adv = losses["adv"] = generator_adversarial_loss(judged[len(real_masks) :])
    return losses, total + segmentation_loss(adv, ce, cfg.loss.lambda_ce, cfg.loss.adv_weight)


def _grader_part(nets: Nets, i_batch: dict, masks: torch.Tensor | None, stats: torch.Tensor | None,
                 cfg: TrainConfig, autocast: Autocast) -> tuple[GraderOutput, dict[str, torch.Tensor], torch.Tensor]:
    """The grader on X^I with G's ``masks`` (and ``stats``): its output, its losses (focal, dme) and their total."""
    with autocast():
        out = nets.grader(i_batch["image"]) if masks is None else nets.grader(i_batch["image"], masks, stats)
    losses: dict[str, torch.Tensor] = grader_losses(out, i_batch, cfg)
    return out, losses, grader_total(losses, cfg)


def disc_update(
    nets: Nets, views: list[tuple[dict, dict]], autocast: Autocast
) -> tuple[float, list[torch.Tensor]]:
    """D's one step in a stage-2 step (Eq. 3 for D: real -> 1, fake -> 0), over the step's micro-batches.

    Each ``(real, fake)`` pair of views is judged in one batch (D's BatchNorm must see both), with G's masks from
    a no-grad pass that leaves G's BN statistics alone, so D learns from detached masks and its backward writes
    nothing into G. Returns D's mean loss and G's masks of each real view, which G's adversarial term puts beside
    its fakes (:func:`joint_losses`).
    """
    G, D = nets.generator, nets.discriminator
    nets.opt_discriminator.zero_grad(set_to_none=True)
    total, reals = 0.0, []
    for real, fake in views:
        images = torch.cat([real["image"], fake["image"]])  # (B_p + B, 3, H, W)
        with torch.no_grad(), autocast(), frozen_buffers(G):
            masks = torch.sigmoid(G(images).float())
        with autocast():
            logits = D(images, masks).float()  # (B_p + B,)
        n = len(real["image"])
        loss = discriminator_loss(logits[:n], logits[n:])
        total += _finite({"disc": loss})["disc"]
        _backward(loss / len(views), nets.scaler)
        reals.append(masks[:n])
    _step([nets.opt_discriminator], nets.scaler)
    return total / len(views), reals
