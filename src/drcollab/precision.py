"""Where bf16 autocast and channels_last are used by default: CUDA, and CPUs with native bf16."""

from __future__ import annotations

import functools
from pathlib import Path

import torch


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


def use_bf16(mode: str, device: torch.device) -> bool:
    """Resolve an ``auto | bf16 | off`` setting for ``device``."""
    if mode != "auto":
        return mode == "bf16"
    return device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())


def use_channels_last(mode: str, device: torch.device) -> bool:
    """Resolve an ``auto | on | off`` setting for ``device`` (auto follows bf16: both pay off together)."""
    if mode != "auto":
        return mode == "on"
    return use_bf16("auto", device)
