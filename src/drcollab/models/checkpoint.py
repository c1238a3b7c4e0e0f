"""Model checkpoints: ``<path>.safetensors`` (weights) + ``<path>.json`` (kind, config, version, metadata).

The two files alone rebuild the model; nothing is ever unpickled. Both are written atomically
(our own temp file + ``os.replace``, see ``files.py``), weights first, so a readable JSON always has its
weights beside it. The JSON records the sha256 of the weights file (``weights_sha256``); loading refuses
weights whose hash differs (damaged or replaced, even with finite values) or that are not finite, naming the file.
A JSON written before the hash was recorded has none, and its weights are loaded unchecked.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ValidationError
from safetensors import SafetensorError
from safetensors.torch import load, save
from torch import nn

from drcollab.config import DiscriminatorConfig, GeneratorConfig, GraderConfig, format_validation_error
from drcollab.constants import VERSION
from drcollab.errors import DataError
from drcollab.files import atomic_write_bytes, atomic_write_text
from drcollab.models.discriminator import LesionDiscriminator
from drcollab.models.generator import LesionGenerator
from drcollab.models.grader import LesionGrader

FORMAT_VERSION = 1
# kind -> (model class, config class); the three networks of the paper.
KINDS: dict[str, tuple[Callable[[Any], nn.Module], type[BaseModel]]] = {
    "generator": (LesionGenerator, GeneratorConfig),
    "discriminator": (LesionDiscriminator, DiscriminatorConfig),
    "grader": (LesionGrader, GraderConfig),
}
# Wrappers that rename parameters: DistributedDataParallel and torch.compile.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
HASH_KEY = "weights_sha256"  # in the checkpoint JSON: sha256 of the safetensors file, in hex


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file in hex, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def checkpoint_paths(path: str | Path) -> tuple[Path, Path]:
    """``(weights, metadata)`` paths for a checkpoint stem; a ``.safetensors``/``.json`` suffix is dropped."""
    path = Path(path)
    if path.suffix in (".safetensors", ".json"):
        path = path.with_suffix("")
    return path.with_name(path.name + ".safetensors"), path.with_name(path.name + ".json")


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside DDP (``.module``) and torch.compile (``._orig_mod``) wrappers."""
    while True:
        inner = getattr(model, "module", None)
        if not isinstance(inner, nn.Module):
            inner = getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove any leading ``module.`` / ``_orig_mod.`` from each key (in any order, repeated)."""
    out = {}
    for key, value in state.items():
        while key.startswith(WRAPPER_PREFIXES):
            key = key.split(".", 1)[1]
        out[key] = value
    return out


def kind_of(model: nn.Module) -> str:
    for kind, (cls, _) in KINDS.items():
        if type(model) is cls:
            return kind
    raise TypeError(f"save_model: {type(model).__name__} is not one of the checkpointable models {sorted(KINDS)}")


def save_model(model: nn.Module, path: str | Path, metadata: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Write ``<path>.safetensors`` and ``<path>.json``; return both paths.

    Args:
        model: A LesionGenerator, LesionDiscriminator or LesionGrader, possibly DDP/compile-wrapped.
        path: Checkpoint stem, e.g. ``runs/x/generator`` (parent folders are created).
        metadata: JSON-serialisable extras (epoch, metrics, ...), stored under ``"metadata"``.
    """
    model = unwrap(model)
    weights_path, json_path = checkpoint_paths(path)
    state = {k: v.detach().cpu().contiguous() for k, v in strip_prefixes(model.state_dict()).items()}
    data = save(state)
    info = {
        "format_version": FORMAT_VERSION,
        "kind": kind_of(model),
        "config": model.config.model_dump(mode="json"),
        "drcollab_version": VERSION,
        "metadata": metadata or {},
        HASH_KEY: hashlib.sha256(data).hexdigest(),
    }
    text = json.dumps(info, indent=2)  # fails here, before any file is touched, if metadata is not JSON
    atomic_write_bytes(weights_path, data)
    atomic_write_text(json_path, text)
    return weights_path, json_path


def read_checkpoint_info(path: str | Path) -> dict[str, Any]:
    """The parsed ``<path>.json`` of a checkpoint (kind, config, drcollab_version, metadata)."""
    _, json_path = checkpoint_paths(path)
    if not json_path.is_file():
        raise DataError(json_path, "checkpoint metadata not found")
    try:
        info = json.loads(json_path.read_text())
    except json.JSONDecodeError as err:
        raise DataError(json_path, f"not valid JSON: {err}") from err
    if not isinstance(info, dict) or info.get("kind") not in KINDS or "config" not in info:
        raise DataError(json_path, f"not a drcollab checkpoint: need 'kind' in {sorted(KINDS)} and 'config'")
    return info


def _read_weights(path: Path, recorded: list[tuple[str | None, str | Path, str]]) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, read once, refused when its sha256 differs from a recorded one.

    Args:
        recorded: ``(sha256 or None, the file it is recorded in, what to do)`` for each place that records one.
    """
    if not path.is_file():
        raise DataError(path, "checkpoint weights not found")
    try:
        data = path.read_bytes()
        state = load(data)
    except (SafetensorError, OSError) as err:
        raise DataError(path, f"not a readable safetensors file: {err}") from err
    digest = hashlib.sha256(data).hexdigest()
    for expected, source, advice in recorded:
        if expected is not None and digest != expected:
            raise DataError(path, f"sha256 differs from {Path(source).name}: the file is damaged or was "
                            f"replaced; restore it from a good copy, or {advice}")
    return state


def load_model(path: str | Path, device: str | torch.device = "cpu", expected_sha256: str | None = None,
               recorded_in: str | Path = "bundle.json") -> nn.Module:
    """Rebuild a model from ``<path>.json`` and ``<path>.safetensors`` alone; returned in eval mode.

    Args:
        path: Checkpoint stem (or either file's path).
        device: Where the model is moved.
        expected_sha256: The weights file's sha256 as a bundle records it (``recorded_in``), checked besides
            the one in ``<path>.json``; the file is read once for both.
        recorded_in: The file ``expected_sha256`` comes from, named when it differs.

    Raises:
        DataError: naming the file when either file is missing, invalid or does not match.
    """
    weights_path, json_path = checkpoint_paths(path)
    info = read_checkpoint_info(path)
    cls, config_cls = KINDS[info["kind"]]
    try:
        config = config_cls.model_validate(info["config"])
    except ValidationError as err:
        raise DataError(json_path, format_validation_error(err, "its 'config' entry", config_cls)) from err
    # The weights come from the file: never download pretrained backbone weights here.
    build_config = config.model_copy(update={"pretrained": False}) if hasattr(config, "pretrained") else config
    model = cls(build_config)
    model.config = config
    model.checkpoint_metadata = info.get("metadata") or {}  # how it was trained: a frozen copy keeps it
    recorded = [(expected_sha256, recorded_in, "re-export the bundle"), (info.get(HASH_KEY), json_path, "train again")]
    state = strip_prefixes(_read_weights(weights_path, recorded))
    bad = next((k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
    if bad is not None:
        raise DataError(weights_path, f"weights are not finite (NaN or infinity in {bad!r}): the file is damaged; "
                        "copy it again from where it was trained, or train again")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise DataError(
            weights_path, f"weights do not match the {info['kind']} config in {json_path.name}: {err}"
        ) from err
    return model.to(device).eval()
