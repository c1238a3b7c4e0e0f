"""Activation checkpointing that leaves training unchanged: same gradients, BN statistics updated once.

``torch.utils.checkpoint`` frees a segment's activations after the forward pass and recomputes them in
the backward pass. The recomputation runs the segment's batch norms in train mode again, which would
update their running statistics a second time; :func:`checkpointed` restores them afterwards, so a run
with checkpointing matches one without in its gradients, its weights and its BN buffers.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


class _KeepBuffers:
    """Context manager: inside it, ``owner``'s buffers (BN running statistics) are stand-in copies.

    Updates in the block go to the copies, which are dropped at the exit; the originals are never written,
    so nothing the autograd graph saved is modified in place.
    """

    def __init__(self, owner: nn.Module) -> None:
        self.owner = owner
        self.originals: list[tuple[nn.Module, str, torch.Tensor]] = []

    def __enter__(self) -> None:
        for module in self.owner.modules():
            for name, buf in module._buffers.items():
                if buf is not None:
                    self.originals.append((module, name, buf))
                    module._buffers[name] = buf.detach().clone()

    def __exit__(self, *exc: object) -> None:
        for module, name, buf in self.originals:
            module._buffers[name] = buf
        self.originals = []


def frozen_buffers(owner: nn.Module) -> _KeepBuffers:
    """``with frozen_buffers(model): ...`` runs the block without changing ``model``'s buffers (BN statistics)."""
    return _KeepBuffers(owner)


def checkpointed(owner: nn.Module, fn: Callable[..., torch.Tensor], *args: Any) -> torch.Tensor:
    """``fn(*args)``, checkpointed when gradients are on (non-reentrant; ``owner`` holds the buffers ``fn`` may
    update)."""
    if not torch.is_grad_enabled():
        return fn(*args)
    return checkpoint(fn, *args, use_reentrant=False, context_fn=lambda: (nullcontext(), _KeepBuffers(owner)))
