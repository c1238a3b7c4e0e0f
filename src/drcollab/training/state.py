"""Whole-run training state: weights, optimizer moments, RNG streams and position, in one file.

A state file is a single ``.safetensors`` whose header also carries the JSON metadata (stage,
epoch, step, config, RNG states of Python and NumPy, optimizer hyper-parameters), so weights and
position can never disagree; it is written to a temporary file and renamed, so a crash at any
moment leaves either the previous state or the new one. A ``.json`` copy of the metadata is
written beside it for people to read. Nothing is ever unpickled.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save
from torch import nn

from drcollab.errors import DrcollabError
from drcollab.files import atomic_write_bytes, atomic_write_text
from drcollab.models.checkpoint import unwrap

_META_KEY = "drcollab"


def _optimizer_split(opt: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            name = f"{prefix}.state.{pid}.{key}"
            if torch.is_tensor(value):
                tensors[name] = value.detach().cpu().contiguous()
            else:
                scalars[name] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _optimizer_join(tensors: dict[str, torch.Tensor], info: dict[str, Any], prefix: str) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in list(tensors.items()) + list(info["scalars"].items()):
        if not name.startswith(prefix + ".state."):
            continue
        pid, key = name[len(prefix) + 7 :].split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    return {"state": state, "param_groups": info["param_groups"]}


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    np_state = np.random.get_state()  # noqa: NPY002 (third-party code may draw from it)
    py_state = random.getstate()
    meta = {
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }
    return tensors, meta


def restore_rng(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    kind, keys, pos, has_gauss, gauss = meta["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))  # noqa: NPY002
    version, internal, gauss_next = meta["python"]
    random.setstate((version, tuple(internal), gauss_next))


def save_state(
    path: Path,
    models: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    meta: dict[str, Any],
) -> Path:
    """Write models, optimizers, RNG streams and ``meta`` (JSON-able) atomically to ``path``."""
    tensors: dict[str, torch.Tensor] = {}
    for name, model in models.items():
        for key, value in unwrap(model).state_dict().items():
            tensors[f"model.{name}.{key}"] = value.detach().cpu().contiguous()
    optim_meta = {}
    for name, opt in optimizers.items():
        t, info = _optimizer_split(opt, f"optim.{name}")
        tensors.update(t)
        optim_meta[name] = info
    rng_tensors, rng_meta = rng_state()
    tensors.update(rng_tensors)
    full_meta = {**meta, "models": sorted(models), "optimizers": optim_meta, "rng": rng_meta}
    text = json.dumps(full_meta, indent=1)
    # Serialised in memory and written through our own temporary file (files.py): safetensors' save_file
    # would leave its own ``.tmpXXXXXX`` behind when killed, and give the checkpoint mode 0600.
    atomic_write_bytes(path, save(tensors, metadata={_META_KEY: text}))
    atomic_write_text(path.with_suffix(".json"), text)
    return path


def read_state(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and metadata of a state file."""
    if not path.is_file():
        raise DrcollabError(f"{path}: training state not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})[_META_KEY])
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no items())
    except (KeyError, OSError, ValueError, SafetensorError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DrcollabError(
            f"{path}: not a readable drcollab training state ({reason}); it is damaged, e.g. cut short by a full "
            "disk: delete it (and last.json) and train again with the same --config and --out to restart the run"
        ) from err
    return tensors, meta


def load_into(
    tensors: dict[str, torch.Tensor],
    meta: dict[str, Any],
    models: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
) -> None:
    """Restore weights, optimizer state and RNG streams read by :func:`read_state`."""
    for name, model in models.items():
        prefix = f"model.{name}."
        sd = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        unwrap(model).load_state_dict(sd)
    for name, opt in optimizers.items():
        opt.load_state_dict(_optimizer_join(tensors, meta["optimizers"][name], f"optim.{name}"))
    restore_rng(tensors, meta["rng"])
