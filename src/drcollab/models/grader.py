"""Lesion-attentive DR grading model of Sec. 3.3 (Fig. 3).

A timm backbone is split at the f_low stage into a ``stem`` (image -> f_low) and the ``rest``
(f_low -> top stage). The top stage of the plain pass f_low -> rest gives f_high (the "context
pass"; it keeps its own BN running statistics, see ``SecondStatistics``). Modes (``GraderConfig.mode``):

- ``ori``: f_low -> rest -> global pool -> linear (the paper's Ori baseline, stage-1 model).
- ``pretrained``: alpha_l = m_l, G's initial masks weight f_low directly (Lesion (Pretrained)).
- ``attention``: alpha_l from the lesion attention model of Eqs. 4-6 (the full model).

For the masked modes each ``alpha_l ⊙ f_low`` goes through the same ``rest`` (shared weights),
is globally pooled, and the L vectors are concatenated and classified into the grades, by a linear layer
(``head = "softmax"``) or the cumulative-logit ``OrdinalHead`` (``head = "ordinal"``). With ``dme`` a second
linear head classifies the same concatenated vector into the risk of macular edema (0, 1, 2). With
``lesion_stats`` the statistics of G's masks (``models/lesion_stats.py``), normalised by a ``BatchNorm1d``, join
that vector before both heads, in every mode.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import timm
import torch
from timm.models import FeatureListNet
from torch import nn

from drcollab.config import GraderConfig
from drcollab.constants import NUM_DME
from drcollab.data.pooling import pool_masks
from drcollab.errors import ConfigError
from drcollab.models.blocks import LesionAttention
from drcollab.models.lesion_stats import num_stats
from drcollab.models.memory import checkpointed
from drcollab.models.ordinal import OrdinalHead


class GraderOutput(NamedTuple):
    """Grade logits ``(B, G)`` (log-probabilities for the ordinal head), the attention maps ``(B, L, h, w)`` at
    f_low's resolution (None for ori) and the DME logits ``(B, 3)`` (None without a DME head)."""

    logits: torch.Tensor
    attention: torch.Tensor | None
    dme_logits: torch.Tensor | None = None


def split_backbone(backbone: FeatureListNet, low_stage: int) -> tuple[nn.Sequential, nn.Sequential]:
    """Split a timm FeatureListNet's ordered modules into ``stem`` (up to f_low) and ``rest`` (up to the top)."""
    names = list(backbone.keys())
    # FeatureListNet flattens nested module names with "_" (e.g. "stages.0" -> "stages_0").
    stage_names = [n.replace(".", "_") for n in backbone.feature_info.module_name()]
    low_end = names.index(stage_names[low_stage]) + 1
    top_end = names.index(stage_names[-1]) + 1
    stem = nn.Sequential(*[backbone[n] for n in names[:low_end]])
    rest = nn.Sequential(*[backbone[n] for n in names[low_end:top_end]])
    return stem, rest


class SecondStatistics(nn.Module):
    """A second copy of a module's buffers (its BN running statistics), for inputs of another distribution.

    ``run(module, x)`` calls ``module`` with its own weights but these buffers, so train-mode BN
    updates this copy instead of the module's. The weights stay shared.
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.names = [name for name, _ in module.named_buffers()]
        for i, (_, buf) in enumerate(module.named_buffers()):
            self.register_buffer(f"b{i}", buf.detach().clone())

    def run(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        buffers = dict(zip(self.names, self.buffers(), strict=True))
        return torch.func.functional_call(module, buffers, (x,), strict=False)

    def copy_from(self, module: nn.Module) -> None:
        with torch.no_grad():
            for mine, theirs in zip(self.buffers(), module.buffers(), strict=True):
                mine.copy_(theirs)


class LesionGrader(nn.Module):
    """C and att of Eq. 2: ``forward(image (B, 3, H, W), masks (B, L, H, W) | None, stats (B, S) | None)``.

    ``masks`` are G's mask probabilities at the image's resolution (required unless mode is ori); ``stats`` their
    lesion statistics (``models/lesion_stats.py``, required with ``lesion_stats``). Returns a ``GraderOutput``.
    Returns logits; softmax lives in the prediction code. With ``checkpointing`` (a training setting,
    ``runtime.activation_checkpointing``) each of the L + 1 passes through ``rest`` is recomputed in the
    backward pass instead of keeping its activations.
    """

    checkpointing: bool = False

    def __init__(self, config: GraderConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or GraderConfig()
        backbone = timm.create_model(config.backbone, features_only=True, pretrained=config.pretrained)
        if not isinstance(backbone, FeatureListNet):
            raise ConfigError(
                f"grader.backbone {config.backbone!r}: timm gives {type(backbone).__name__} for features_only, "
                "drcollab needs a FeatureListNet backbone (e.g. resnet18, resnet50, convnext_tiny, regnety_016)"
            )
        info = backbone.feature_info
        if config.low_stage >= len(info) - 1:
            raise ConfigError(
                f"grader.low_stage {config.low_stage}: {config.backbone} has stages 0..{len(info) - 1}; "
                f"f_low must come before the top stage, so use 0..{len(info) - 2}"
            )
        self.low_channels = info.channels()[config.low_stage]
        self.low_stride = info.reduction()[config.low_stage]
        self.top_channels = info.channels()[-1]
        self.stem, self.rest = split_backbone(backbone, config.low_stage)
        branches = 1 if config.mode == "ori" else config.num_lesions
        # A BatchNorm1d brings each statistic (log area, log count) to zero mean and unit variance over the data.
        self.stats_norm = nn.BatchNorm1d(num_stats(config.num_lesions)) if config.lesion_stats else None
        features = branches * self.top_channels + (num_stats(config.num_lesions) if config.lesion_stats else 0)
        self.classifier: nn.Module = (OrdinalHead(features, config.num_grades) if config.head == "ordinal"
                                      else nn.Linear(features, config.num_grades))
        self.dme_classifier = nn.Linear(features, NUM_DME) if config.dme else None
        self.attention: LesionAttention | None = None
        self.context_stats: SecondStatistics | None = None
        if config.mode == "attention":
            self.attention = LesionAttention(
                self.low_channels, self.top_channels, config.att_channels, config.num_lesions
            )
            if config.attention_init == "masks":
                self.attention.init_from_masks(config.attention_gain)
            # The context pass (plain f_low -> rest -> f_high) shares rest's weights but keeps its own BN
            # running statistics: mixing them with the attended pass's would make eval differ from training.
            self.context_stats = SecondStatistics(self.rest)

    def forward(
        self, image: torch.Tensor, masks: torch.Tensor | None = None, stats: torch.Tensor | None = None
    ) -> GraderOutput:
        stats = self.check_stats(image, stats)
        f_low = self.stem(image)  # (B, C_low, h, w)
        if self.config.mode == "ori":
            return self.classify(self._rest(self.rest, f_low).unsqueeze(1), None, stats)
        m = pool_masks(self.check_masks(image, masks), f_low.shape[-2:])  # (B, L, h, w)
        if self.attention is None or self.context_stats is None:
            alpha = m  # Lesion (Pretrained): the initial masks weight f_low directly
        else:
            f_top = self._rest(self._context, f_low)  # (B, C_top, h', w'), source of f_high
            alpha = self.attention(f_low, f_top, m)  # (B, L, h, w), Eqs. 4-6
        b, num_lesions = alpha.shape[:2]
        attended = alpha.unsqueeze(2) * f_low.unsqueeze(1)  # (B, L, C_low, h, w)
        top = self._rest(self.rest, attended.flatten(0, 1))  # (B*L, C_top, h', w'), shared weights over lesions
        top = top.unflatten(0, (b, num_lesions))  # (B, L, C_top, h', w')
        return self.classify(top, alpha, stats)

    def attention_maps(self, image: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """α alone, ``(B, L, h, w)``: the stem, the context pass and the attention model of :meth:`forward`, without
        the attended passes or the heads (mode ``attention`` only)."""
        if self.attention is None or self.context_stats is None:
            raise ConfigError(f"grader.mode {self.config.mode!r} has no attention model; use mode 'attention'")
        f_low = self.stem(image)
        m = pool_masks(self.check_masks(image, masks), f_low.shape[-2:])
        return self.attention(f_low, self._rest(self._context, f_low), m)

    def _context(self, f_low: torch.Tensor) -> torch.Tensor:
        return self.context_stats.run(self.rest, f_low)

    def _rest(self, fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return checkpointed(self, fn, x) if self.checkpointing else fn(x)

    def classify(
        self, top: torch.Tensor, alpha: torch.Tensor | None, stats: torch.Tensor | None = None
    ) -> GraderOutput:
        """Global-average-pool each branch's top feature ``(B, n, C_top, h', w')``, concatenate (with the normalised
        statistics ``(B, S)``), classify."""
        pooled = top.mean(dim=(-2, -1)).flatten(1)  # (B, n * C_top)
        if self.stats_norm is not None:
            pooled = torch.cat([pooled, self.stats_norm(stats.float()).to(pooled.dtype)], dim=1)  # (B, n * C_top + S)
        dme = None if self.dme_classifier is None else self.dme_classifier(pooled)  # (B, 3)
        return GraderOutput(self.classifier(pooled), alpha, dme)  # logits (B, G)

    def check_masks(self, image: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
        expected = (image.shape[0], self.config.num_lesions)
        if masks is None or masks.dim() != 4 or tuple(masks.shape[:2]) != expected:
            got = None if masks is None else tuple(masks.shape)
            raise ValueError(
                f"LesionGrader mode {self.config.mode!r} needs masks of shape (B={expected[0]}, "
                f"L={expected[1]}, H, W) (G's mask probabilities), got {got}"
            )
        return masks

    def check_stats(self, image: torch.Tensor, stats: torch.Tensor | None) -> torch.Tensor | None:
        """``stats`` when the grader takes them (``lesion_stats``), else None; refuses missing or misshapen ones."""
        if self.stats_norm is None:
            if stats is not None:
                raise ValueError("LesionGrader got lesion statistics but was built with grader.lesion_stats false")
            return None
        expected = (image.shape[0], self.stats_norm.num_features)
        if stats is None or tuple(stats.shape) != expected:
            got = None if stats is None else tuple(stats.shape)
            raise ValueError(
                f"LesionGrader with grader.lesion_stats needs stats of shape (B={expected[0]}, S={expected[1]}) "
                f"(models/lesion_stats.py lesion_statistics of G's masks), got {got}"
            )
        return stats


def grader_from_ori(ori: LesionGrader, target: GraderConfig | str = "attention") -> LesionGrader:
    """Stage 2's starting point: a masked-mode grader initialised from a trained ``ori`` grader.

    Args:
        ori: The trained plain grader.
        target: The stage-2 grader's config (its mode, attention size and initialisation), or just
            a mode to keep everything else from ``ori``'s config. The backbone must be ``ori``'s.

    The backbone weights are copied; the classifier (and the DME head) is the ori one with its weight divided
    by L and replicated per lesion branch (an ordinal head's score weight alike, its thresholds as they are; the
    statistics' columns and normaliser copied as they are), so with alpha == 1 it reproduces the ori logits exactly.
    The attention module (mode ``attention``) gets the target config's initialisation.
    """
    if ori.config.mode != "ori":
        raise ValueError(f"grader_from_ori needs an 'ori' grader, got mode {ori.config.mode!r}")
    if isinstance(target, str):
        target = ori.config.model_copy(update={"mode": target})
    if target.mode == "ori":
        raise ValueError("grader_from_ori: target mode must be 'pretrained' or 'attention'")
    for field in ("backbone", "low_stage", "num_lesions", "num_grades", "head", "dme", "lesion_stats"):
        if getattr(target, field) != getattr(ori.config, field):
            raise ConfigError(
                f"grader.{field} {getattr(target, field)!r} differs from the pre-trained grader's "
                f"{getattr(ori.config, field)!r}: stage 2 starts from its weights"
            )
    model = LesionGrader(target.model_copy(update={"pretrained": False}))  # weights come from ori, not timm
    model.config = target
    model.stem.load_state_dict(ori.stem.state_dict())
    model.rest.load_state_dict(ori.rest.state_dict())
    if model.context_stats is not None:
        model.context_stats.copy_from(ori.rest)  # f_high starts as the ori model's own top feature
    heads = [(model.classifier, ori.classifier)]
    if model.dme_classifier is not None:
        heads.append((model.dme_classifier, ori.dme_classifier))
    if model.stats_norm is not None:
        model.stats_norm.load_state_dict(ori.stats_norm.state_dict())
    num_lesions, c_top = model.config.num_lesions, ori.top_channels
    for head, ori_head in heads:
        state = {name: _spread(value, c_top, num_lesions) if name.endswith("weight") else value
                 for name, value in ori_head.state_dict().items()}
        head.load_state_dict(state)
    return model.to(next(ori.parameters()).device)


def _spread(weight: torch.Tensor, c_top: int, num_lesions: int) -> torch.Tensor:
    """``(K, C_top [+ S])`` -> ``(K, L*C_top [+ S])``: the pooled columns divided by L and replicated per branch,
    the statistics' columns as they are."""
    pooled, stats = weight[:, :c_top], weight[:, c_top:]
    return torch.cat([pooled.repeat(1, num_lesions) / num_lesions, stats], dim=1)
