"""Validation on the held-out fold at the preprocessed resolution (full-resolution evaluation is
``drcollab evaluate``): pooled per-lesion AUC-PR inside the field of view, grade accuracy and kappa (also per source
when X^I has several), and with a DME head the DME accuracy and the joint DR + DME accuracy (IDRiD sub-challenge 2)
over the images whose DME is known exactly."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from drcollab.data.cache import PreprocessCache
from drcollab.data.records import Record
from drcollab.data.transforms import image_to_tensor
from drcollab.evaluation.grading_metrics import grading_metrics
from drcollab.evaluation.metrics import LesionCurves, UndefinedMetricWarning
from drcollab.models.checkpoint import unwrap
from drcollab.models.lesion_stats import lesion_statistics
from drcollab.models.mask_path import dequantise
from drcollab.training.datasets import GraderInputLoader
from drcollab.training.steps import Autocast


def _batches(records: Sequence[Record], cache: PreprocessCache, batch_size: int):  # noqa: ANN202
    for start in range(0, len(records), batch_size):
        items = [cache.get(r) for r in records[start : start + batch_size]]
        images = torch.stack([image_to_tensor(p.image) for p in items])  # (B, 3, S, S)
        yield records[start : start + batch_size], items, images


@torch.inference_mode()
def validate_generator(
    generator: nn.Module, records: Sequence[Record], cache: PreprocessCache, device: torch.device,
    autocast: Autocast, batch_size: int = 4,
) -> dict[str, float]:
    """Pooled per-lesion AUC-PR (``ap_MA`` ... and their mean ``ap_mean``) over pixel-labelled records."""
    g = unwrap(generator)
    was_training = g.training
    g.eval()
    curves = LesionCurves(bins=2**12)
    for _, items, images in _batches([r for r in records if r.has_masks], cache, batch_size):
        with autocast():
            probs = torch.sigmoid(g(images.to(device)).float()).cpu().numpy()  # (B, L, S, S)
        for p, pre in zip(probs, items, strict=True):
            curves.update(p, pre.masks, pre.fov)
    g.train(was_training)
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)  # a lesion absent from a small fold is NaN
        for lesion, result in curves.results().items():
            out[f"ap_{lesion}"] = result.average_precision
    defined = [v for k, v in out.items() if not np.isnan(v)]
    out["ap_mean"] = float(np.mean(defined)) if defined else float("nan")
    return out


@torch.inference_mode()
def validate_grader(
    grader: nn.Module, generator: nn.Module | None, records: Sequence[Record], cache: PreprocessCache,
    device: torch.device, autocast: Autocast, g_inputs: GraderInputLoader | None = None, batch_size: int = 8,
    sources: Sequence[str] | None = None,
) -> dict[str, float]:
    """Accuracy and quadratic weighted kappa of the grader (fed G's masks, and statistics, when it uses them), and
    with a DME head ``dme_accuracy`` and ``joint_accuracy`` (DR and DME both right) over the images with a known DME.

    ``sources`` names each record's source; with two or more, each source's ``<source>/accuracy`` and
    ``<source>/kappa`` follow the pooled numbers.

    A frozen G's inputs come precomputed from ``g_inputs``, as in the stage's batches (``training/mask_inputs.py``);
    without it, a ``generator`` (one that trains) runs on the grader's images, as in ``joint_step``.
    """
    if sources is not None and len(sources) != len(records):
        raise ValueError(f"validate_grader: {len(sources)} source names for {len(records)} records")
    c, g = unwrap(grader), None if generator is None else unwrap(generator)
    modes = [(m, m.training) for m in (c, g) if m is not None]
    for m, _ in modes:
        m.eval()
    y_true, y_pred, dme_true, dme_pred, dme_rows = [], [], [], [], []
    for recs, _, images in _batches(records, cache, batch_size):
        images = images.to(device)
        masks = stats = None
        if g_inputs is not None:
            pairs = [g_inputs(r) for r in recs]
            masks = dequantise(torch.stack([torch.from_numpy(m) for m, _ in pairs])).to(device)  # (B, L, S, S)
            stats = None if pairs[0][1] is None else torch.stack([torch.from_numpy(v) for _, v in pairs]).to(device)
        with autocast():
            if g_inputs is None and g is not None:
                masks = torch.sigmoid(g(images).float())
                stats = lesion_statistics(masks) if c.config.lesion_stats else None
            logits = c(images) if masks is None else c(images, masks, stats)
        if logits.dme_logits is not None:
            known = [i for i, r in enumerate(recs) if r.dme is not None]
            dme_pred += logits.dme_logits.float().argmax(1)[known].tolist()
            dme_true += [recs[i].dme for i in known]
            dme_rows += [len(y_true) + i for i in known]
        y_pred += logits.logits.float().argmax(1).tolist()
        y_true += [r.grade for r in recs]
    for m, was in modes:
        m.train(was)
    result = grading_metrics(np.asarray(y_true), np.asarray(y_pred))
    out = {"accuracy": result.accuracy, "kappa": result.kappa}
    if sources is not None and len(set(sources)) > 1:
        t, p, tags = np.asarray(y_true), np.asarray(y_pred), np.asarray(sources)
        for source in dict.fromkeys(sources):  # in the order of the sources
            part = grading_metrics(t[tags == source], p[tags == source])
            out |= {f"{source}/accuracy": part.accuracy, f"{source}/kappa": part.kappa}
    if dme_rows:
        dme_right = np.asarray(dme_true) == np.asarray(dme_pred)
        dr_right = (np.asarray(y_true) == np.asarray(y_pred))[dme_rows]
        out |= {"dme_accuracy": float(dme_right.mean()), "joint_accuracy": float((dme_right & dr_right).mean())}
    return out
