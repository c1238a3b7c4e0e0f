"""Which autocast precision a device gets: bf16 where it is native, fp16 + GradScaler on older GPUs, else fp32.

``runtime.amp: auto`` resolves, per device:

=========================================  ==================================================================
Device                                     Precision
=========================================  ==================================================================
CUDA, compute capability >= 8.0 (A100+)    bf16 autocast (native tensor cores; no loss scaling needed)
CUDA, compute capability < 8.0 (V100 ...)  fp16 autocast with ``torch.amp.GradScaler`` (bf16 is emulated there)
CPU with AVX512-BF16 or AMX                bf16 autocast
other CPUs                                 fp32 (bf16 is emulated and usually slower)
=========================================  ==================================================================
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

NATIVE_BF16_CAPABILITY = (8, 0)


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True when the CPU has bf16 instructions (AVX512-BF16 or AMX), where bf16 autocast is faster.

    On other CPUs bf16 is emulated and usually slower than fp32.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


@dataclass(frozen=True)
class Precision:
    """The resolved autocast setting of one device; ``str()`` says what was chosen and why."""

    device_type: str
    dtype: torch.dtype | None  # None: fp32, no autocast
    reason: str

    @property
    def scaled(self) -> bool:
        """fp16 needs loss scaling: its 5-bit exponent underflows small gradients."""
        return self.dtype == torch.float16

    def autocast(self) -> Callable[[], Any]:
        """A factory of autocast contexts (a no-op one for fp32)."""
        if self.dtype is None:
            return contextlib.nullcontext
        return lambda: torch.autocast(self.device_type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler | None:
        return torch.amp.GradScaler(self.device_type) if self.scaled else None

    def __str__(self) -> str:
        name = {None: "fp32", torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast + GradScaler"}
        return f"{name[self.dtype]} on {self.device_type} ({self.reason})"


def resolve_precision(mode: str, device: torch.device) -> Precision:
    """Resolve a ``runtime.amp`` setting (``auto | bf16 | fp16 | off``) for ``device``."""
    kind = device.type
    if mode == "off":
        return Precision(kind, None, "runtime.amp: off")
    if mode in ("bf16", "fp16"):
        return Precision(kind, torch.bfloat16 if mode == "bf16" else torch.float16, f"runtime.amp: {mode}")
    if kind == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        if (major, minor) >= NATIVE_BF16_CAPABILITY:
            return Precision(kind, torch.bfloat16, f"compute capability {major}.{minor} has native bf16")
        return Precision(kind, torch.float16, f"compute capability {major}.{minor} < 8.0 emulates bf16")
    if kind == "cpu" and cpu_has_native_bf16():
        return Precision(kind, torch.bfloat16, "CPU with native bf16 (AVX512-BF16/AMX)")
    return Precision(kind, None, f"no native bf16 on {kind}")


def use_bf16(mode: str, device: torch.device) -> bool:
    """Whether ``mode`` resolves to bf16 autocast on ``device``."""
    return resolve_precision(mode, device).dtype == torch.bfloat16


def use_channels_last(mode: str, device: torch.device) -> bool:
    """Resolve an ``auto | on | off`` setting for ``device`` (auto: wherever ``amp: auto`` autocasts)."""
    if mode != "auto":
        return mode == "on"
    return resolve_precision("auto", device).dtype is not None
