"""One optimisation step of each stage: ``seg_step`` (1a), ``grade_step`` (1b), ``joint_step`` (2).

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
    attention_mask_loss,
    discriminator_loss,
    dme_loss,
    focal_loss,
    generator_adversarial_loss,
    mask_loss,
    presence_loss,
    segmentation_loss,
)
from drcollab.models.checkpoint import unwrap
from drcollab.models.grader import GraderOutput
from drcollab.models.lesion_stats import lesion_statistics
from drcollab.models.mask_path import dequantise
from drcollab.models.memory import frozen_buffers
from drcollab.training.config import JointConfig, TrainConfig
from drcollab.training.pseudo import gate_attention, pseudo_targets
from drcollab.training.two_size import alpha_in_crops, teacher_attention

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


def joint_step(
    nets: Nets, p_batch: dict | None, i_batch: dict, cfg: TrainConfig, autocast: Autocast, use_semi: bool,
    c_batch: dict | None = None,
) -> dict[str, float]:
    """Stage 2: one joint, end-to-end step on a pixel-labelled and a grade-labelled batch.

    Updates, in order:

    1. G predicts mask logits for X^P and X^I in one forward pass (frozen G: its masks of X^I came with the batch,
       precomputed through the one mask path, ``training/mask_inputs.py``).
    2. The grader sees X^I and G's masks m = sigmoid(G(X^I)) (with gradient into G when
       ``joint.grade_to_generator``), with ``grader.lesion_stats`` their statistics too, and returns grade logits
       and attention maps alpha (Eqs. 4-6).
    3. Pseudo masks and their per-pixel weights (``training/pseudo.py``): alpha up-sampled to the image size
       (the paper; ``joint.pseudo_mask: gated`` multiplies it by G's own masks, ``refined`` keeps G's lesion
       pixels where alpha agrees, weighted by their agreement; ``joint.zero_absent`` zeroes the lesions the
       labels rule out), detached.
    4. D update (``joint.adversarial``): D learns real = (X^P, G(X^P)) [or X^P's ground truth] vs
       fake = (X^I, G(X^I)) [``joint.disc_match: grade``: X^I of grade >= ``disc_min_grade`` only], on detached
       masks; D's optimizer steps.
    5. G and grader update from one backward pass of
       ``focal(C) + presence_weight * L_presence(alpha) + alpha_mask_weight * L_alpha(X^P) + L_adv(G)
       + lambda * [BCE(G(X^P), s^P) + semi_weight * BCE(G(X^I), pseudo)]``
       (plus ``loss.dme_weight * dme(C)`` with a DME head, over the X^I images whose DME is known)
       (both BCE terms over the pixels inside each image's field of view, the pseudo one weighted per pixel;
       ``loss.mask_loss`` may add Dice), with L_adv judged by the just-updated D; G's and the grader's
       optimizers step. L_presence (``losses/presence.py``) reaches G through alpha as the focal loss does;
       L_alpha(X^P) (the grader's alpha on X^P against X^P's masks, G's masks of X^P detached) the grader only.

    With ``joint.accumulation`` k > 1 the order holds for the whole batch: D first steps once on all k
    micro-batches (G's masks for it from a no-grad pass that leaves G's BN statistics alone), then steps 1-3 and
    5 run per micro-batch, accumulating G's and the grader's gradients, and their optimizers step once.

    With G at its own size (``c_batch``: crops of X^I at G's size, ``training/two_size.py``) G runs on X^P and
    X^I crops instead, its X^I targets come from the grader's teacher pass, D judges crops, and the grader reads the
    start G's precomputed masks of X^I (:func:`_crop_losses`).
    """
    parts = cfg.joint.accumulation
    i_parts = micro_batches(i_batch, parts)
    p_parts = [None] * parts if p_batch is None else micro_batches(p_batch, parts)
    c_parts = [None] * parts if c_batch is None else micro_batches(c_batch, parts)
    trains_g = nets.generator is not None and cfg.joint.train_generator
    disc = None
    if parts > 1 and nets.discriminator is not None and trains_g:
        disc = _disc_phase(nets, p_parts, i_parts if c_batch is None else c_parts, cfg, autocast)
    for opt in (nets.opt_generator, nets.opt_grader):
        if opt is not None:
            opt.zero_grad(set_to_none=True)
    sums: dict[str, float] = {}
    for p, i, c in zip(p_parts, i_parts, c_parts, strict=True):
        if c is None:
            losses, total = _joint_losses(nets, p, i, cfg, autocast, use_semi, update_disc=parts == 1)
        else:
            losses, total = _crop_losses(nets, p, c, i, cfg, autocast, use_semi, update_disc=parts == 1)
        for name, value in _finite(losses).items():
            sums[name] = sums.get(name, 0.0) + value
        _backward(total / parts if parts > 1 else total, nets.scaler)
    _step([nets.opt_generator, nets.opt_grader], nets.scaler)
    if nets.scaler is not None:
        nets.scaler.update()  # once per step, after every optimizer of it (D's included) stepped
    values = {name: v / parts for name, v in sums.items()}
    return values if disc is None else {**values, "disc": disc}


def _joint_losses(
    nets: Nets, p_batch: dict | None, i_batch: dict, cfg: TrainConfig, autocast: Autocast, use_semi: bool,
    update_disc: bool,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Steps 1-4 of :func:`joint_step` on one (micro-)batch: its losses and their total (step 4 if ``update_disc``)."""
    j = cfg.joint
    G = nets.generator
    x_i = i_batch["image"]
    logits_p = logits_i = None
    grader_masks, stats = i_batch.get("g_masks"), i_batch.get("stats")  # a frozen G's (mask path)
    if G is not None and j.train_generator:
        x_p, s_p = p_batch["image"], p_batch["masks"]
        with autocast():
            logits = G(torch.cat([x_p, x_i])).float()  # (B_p + B_i, L, H, W)
        logits_p, logits_i = logits[: len(x_p)], logits[len(x_p) :]
        masks_i = torch.sigmoid(logits_i)  # (B_i, L, H, W)
        grader_masks = masks_i if j.grade_to_generator else masks_i.detach()
        stats = lesion_statistics(grader_masks) if cfg.grader.lesion_stats else None  # (B_i, S)
    out, losses, total = _grader_part(nets, i_batch, None if G is None else grader_masks, stats, cfg, autocast)
    if logits_p is not None and j.alpha_mask_weight:
        losses["alpha_p"] = _attention_on_pixels(nets, p_batch, torch.sigmoid(logits_p).detach(), autocast)
        total = total + j.alpha_mask_weight * losses["alpha_p"]
    if logits_p is not None:
        ce = losses["bce_p"] = g_mask_loss(logits_p, s_p, loss_fov(p_batch["fov"], cfg), cfg)
        if use_semi and out.attention is not None:
            alpha = gate_attention(out.attention, i_batch["fov"], j)
            target, weight = pseudo_targets(alpha, masks_i, loss_fov(i_batch["fov"], cfg), i_batch.get("presence"), j)
            losses["bce_i"] = g_mask_loss(logits_i, target, weight, cfg)
            ce = ce + j.semi_weight * losses["bce_i"]
        adv = _adversarial(nets, p_batch, logits_p, i_batch, masks_i, cfg, autocast, update_disc, losses)
        total = total + segmentation_loss(adv, ce, cfg.loss.lambda_ce)
    return losses, total


def _grader_part(nets: Nets, i_batch: dict, masks: torch.Tensor | None, stats: torch.Tensor | None,
                 cfg: TrainConfig, autocast: Autocast) -> tuple[GraderOutput, dict[str, torch.Tensor], torch.Tensor]:
    """The grader on X^I with G's ``masks`` (and ``stats``): its output, its losses (focal, dme, presence), total."""
    j, C = cfg.joint, nets.grader
    with autocast():
        out = C(i_batch["image"]) if masks is None else C(i_batch["image"], masks, stats)
    losses: dict[str, torch.Tensor] = grader_losses(out, i_batch, cfg)
    total = grader_total(losses, cfg)
    if j.presence_weight and out.attention is not None:
        losses["presence"] = presence_loss(out.attention.float(), i_batch["presence"], i_batch["fov"],
                                           j.presence_topk)
        total = total + j.presence_weight * losses["presence"]
    return out, losses, total


def _attention_on_pixels(nets: Nets, p_batch: dict, masks_p: torch.Tensor, autocast: Autocast) -> torch.Tensor:
    """``joint.alpha_mask_weight``'s term: the grader's α on X^P (with G's detached masks of X^P, as it sees X^I)
    against X^P's ground truth. Reaches the grader only."""
    with autocast():
        alpha = unwrap(nets.grader).attention_maps(p_batch["image"], masks_p).float()
    return attention_mask_loss(alpha, p_batch["masks"], p_batch["fov"])


def _adversarial(
    nets: Nets, p_batch: dict, logits_p: torch.Tensor, fake_batch: dict, masks_fake: torch.Tensor,
    cfg: TrainConfig, autocast: Autocast, update_disc: bool, losses: dict[str, torch.Tensor],
) -> torch.Tensor:
    """G's adversarial term (0 without D), after D's update on detached masks when ``update_disc``.

    Real: (X^P, G(X^P)) [or X^P's ground truth]; fake: ``fake_batch``'s images with G's ``masks_fake``
    (``joint.disc_match: grade``: those of grade >= ``joint.disc_min_grade``). Adds ``disc`` and ``adv`` to ``losses``.
    """
    j, D = cfg.joint, nets.discriminator
    x_p = p_batch["image"]
    if D is None:
        return torch.zeros((), device=x_p.device)
    real = p_batch["masks"] if j.adv_real == "ground_truth" else torch.sigmoid(logits_p).detach()
    x_f, m_f = _fakes(fake_batch, masks_fake, j)
    if update_disc:
        losses["disc"] = _disc_update(nets, x_p, real, x_f, m_f.detach(), autocast)
    with autocast():  # the same real+fake batch composition as D's update, so BN sees alike batches
        judged = D(torch.cat([x_p, x_f]), torch.cat([real, m_f])).float()
    adv = losses["adv"] = generator_adversarial_loss(judged[len(x_p) :])
    return adv


def _crop_losses(
    nets: Nets, p_batch: dict, c_batch: dict, i_batch: dict, cfg: TrainConfig, autocast: Autocast, use_semi: bool,
    update_disc: bool,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """:func:`joint_step`'s losses when G trains at its own size (``training/two_size.py``).

    The grader learns from X^I with the start G's precomputed masks (``g_masks``, ``stats``); G from crops at its
    size: X^P crops against their masks, X^I crops (``c_batch``) against the pseudo masks of the teacher pass
    (the grader's α on the whole image, sampled at the crop's pixels); D judges crops. No loss reaches both.
    """
    j, G, C = cfg.joint, nets.generator, nets.grader
    out, losses, total = _grader_part(nets, i_batch, i_batch["g_masks"], i_batch.get("stats"), cfg, autocast)
    x_p, x_c = p_batch["image"], c_batch["image"]
    with autocast():
        logits = G(torch.cat([x_p, x_c])).float()  # (B_p + B_c, L, c, c)
    logits_p, logits_c = logits[: len(x_p)], logits[len(x_p) :]
    masks_c = torch.sigmoid(logits_c)
    ce = losses["bce_p"] = g_mask_loss(logits_p, p_batch["masks"], loss_fov(p_batch["fov"], cfg), cfg)
    if use_semi and out.attention is not None:
        with autocast():
            alpha = teacher_attention(C, c_batch)  # (B_c, L, h, w), no gradient
        alpha = gate_attention(alpha, c_batch["teacher_fov"], j)  # on the whole image, before it is cropped
        alpha = alpha_in_crops(alpha, c_batch["box"], c_batch["flip"], x_c.shape[-1])  # (B_c, L, c, c)
        target, weight = pseudo_targets(alpha, masks_c, loss_fov(c_batch["fov"], cfg), c_batch.get("presence"), j)
        losses["bce_i"] = g_mask_loss(logits_c, target, weight, cfg)
        ce = ce + j.semi_weight * losses["bce_i"]
    adv = _adversarial(nets, p_batch, logits_p, c_batch, masks_c, cfg, autocast, update_disc, losses)
    return losses, total + segmentation_loss(adv, ce, cfg.loss.lambda_ce)


def _fakes(i_batch: dict, masks_i: torch.Tensor, j: JointConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The X^I images and G's masks of D's fake branch: all (``disc_match: none``) or those of grade >=
    ``disc_min_grade``.

    Every pixel-labelled image has DR; with healthy eyes among the fakes D could tell the branches apart by
    lesion presence alone and pay G to paint lesions on them, and with mild eyes among them by lesion amount
    (``benchmarks/lesion_burden.py``). A batch without a fake leaves D real images only.
    """
    x_i = i_batch["image"]
    if j.disc_match == "none":
        return x_i, masks_i
    keep = i_batch["grade"] >= j.disc_min_grade  # (B_i,)
    return x_i[keep], masks_i[keep]


def _disc_loss(
    D: nn.Module, x_p: torch.Tensor, real: torch.Tensor, x_i: torch.Tensor, fake: torch.Tensor, autocast: Autocast
) -> torch.Tensor:
    """Eq. 3 for D: real (X^P, m^P) -> 1, fake (X^I, m^I) -> 0, in one batch."""
    with autocast():
        logits = D(torch.cat([x_p, x_i]), torch.cat([real, fake])).float()  # (B_p + B_i,)
    loss = discriminator_loss(logits[: len(x_p)], logits[len(x_p) :])
    _finite({"disc": loss})
    return loss


def _disc_update(
    nets: Nets, x_p: torch.Tensor, real: torch.Tensor, x_i: torch.Tensor, fake: torch.Tensor, autocast: Autocast
) -> torch.Tensor:
    """D's step on detached masks."""
    loss = _disc_loss(nets.discriminator, x_p, real, x_i, fake, autocast)
    nets.opt_discriminator.zero_grad(set_to_none=True)
    _backward(loss, nets.scaler)
    _step([nets.opt_discriminator], nets.scaler)
    return loss.detach()


def _disc_phase(nets: Nets, p_parts: list[dict], i_parts: list[dict], cfg: TrainConfig, autocast: Autocast) -> float:
    """D's one step over all micro-batches, on G's masks from no-grad passes (G's BN statistics untouched)."""
    G, parts = nets.generator, len(i_parts)
    nets.opt_discriminator.zero_grad(set_to_none=True)
    total = 0.0
    for p, i in zip(p_parts, i_parts, strict=True):
        n = len(p["image"])
        with torch.no_grad(), autocast(), frozen_buffers(G):
            masks = torch.sigmoid(G(torch.cat([p["image"], i["image"]])).float())  # (B_p + B_i, L, H, W)
        real = p["masks"] if cfg.joint.adv_real == "ground_truth" else masks[:n]
        x_f, m_f = _fakes(i, masks[n:], cfg.joint)
        loss = _disc_loss(nets.discriminator, p["image"], real, x_f, m_f, autocast)
        total += float(loss.detach())
        _backward(loss / parts, nets.scaler)
    _step([nets.opt_discriminator], nets.scaler)
    return total / parts
