"""Choose how a bundle runs on this machine: the fastest setting whose answers match the plain fp32 path.

A *setting* is a precision (``fp32``, or ``bf16`` autocast), a memory format (channels_last or not) and how G
covers the image (in the bundle's tiles, or in one whole pass). The plain path, fp32 in the bundle's tiles, is
the reference. :func:`choose_setting` runs the bundle once per candidate on one fixed synthetic fundus at the
bundle's input size (a warm-up pass, then a timed one) and keeps the fastest candidate whose answers match the
reference there:

- every lesion probability inside the field of view within :data:`MAP_TOLERANCE` of the reference's, and
- the same DR grade, DME risk and referable flag, each probability within :data:`PROB_TOLERANCE`.

One synthetic fundus cannot show that a setting keeps every grade of a real set, so the settings that change the
arithmetic are candidates only where the bundle says they were checked on real photos
(``benchmarks/bench_predict_equality.py``: the same grades, DME risks and referable flags as fp32 on a validation
set): bf16 with ``"bf16": true`` in ``bundle.json``, and only where the device computes it natively (AVX512-BF16/AMX
CPUs, CUDA compute capability >= 8.0, :mod:`drcollab.precision`; elsewhere it is emulated and slower); G's whole
pass with ``"whole_image": true``. fp32 with channels_last (G's windows stacked into few calls) changes only the
order of the sums and is always a candidate. The choice is remembered per bundle fingerprint and machine (CPU,
threads, torch version) under :func:`drcollab.files.cache_home`, so only the first run on a machine pays for the
measurement.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from drcollab.data.preprocess import preprocess
from drcollab.data.synthetic import generate_fundus
from drcollab.errors import WriteError
from drcollab.files import atomic_write_text, cache_home
from drcollab.inference.bundle import Bundle
from drcollab.inference.predictor import Prediction, Predictor
from drcollab.precision import resolve_precision

MAP_TOLERANCE = 0.05  # largest allowed |p - p_fp32| of a lesion probability inside the field of view
PROB_TOLERANCE = 0.02  # largest allowed |p - p_fp32| of a grade or DME probability
CHOICE_VERSION = 2  # bump when the candidates or the rules change: remembered choices are then measured again


@dataclass(frozen=True)
class Setting:
    """One way to run a bundle: ``precision`` ``fp32`` or ``bf16``, ``channels_last``, and G's ``whole`` pass."""

    precision: str = "fp32"
    channels_last: bool = False
    whole: bool = False

    def describe(self, tile: int) -> str:
        layout = " + channels_last" if self.channels_last else ""
        cover = "one whole pass" if self.whole or not tile else f"{tile}-px tiles"
        return f"{self.precision}{layout}, G in {cover}"


REFERENCE = Setting()


@dataclass(frozen=True)
class Choice:
    """The chosen setting, why, and the seconds per image measured for each candidate."""

    setting: Setting
    reason: str
    seconds: dict[str, float]

    def record(self) -> dict:
        """JSON-ready, for ``predictions.json`` and the remembered choice."""
        return {"setting": asdict(self.setting), "reason": self.reason, "seconds": self.seconds}


def candidates(bundle: Bundle, device: torch.device) -> list[Setting]:
    """The settings worth measuring on ``device`` for ``bundle``; the reference first."""
    wholes = [False, True] if bundle.info.get("whole_image") and bundle.info.get("tile") else [False]
    bf16 = bool(bundle.info.get("bf16")) and resolve_precision("auto", device).dtype == torch.bfloat16
    found = [REFERENCE]
    for whole in wholes:
        found += [Setting("fp32", True, whole)] + ([Setting("fp32", False, True)] if whole else [])
        if bf16:
            found.append(Setting("bf16", True, whole))
    return list(dict.fromkeys(found))


def make_predictor(bundle: Bundle, device: torch.device | str, setting: Setting, tile: int | None = None,
                   **options) -> Predictor:
    """A :class:`Predictor` for ``bundle`` under ``setting``; a ``tile`` given here wins over the setting's G pass
    (``options``: the predictor's other arguments)."""
    if tile is None and setting.whole:
        tile = 0
    return Predictor(bundle, device=device, amp=setting.precision == "bf16", channels_last=setting.channels_last,
                     tile=tile, **options)


def _machine_key(device: torch.device) -> str:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = _cpu_name()
    return f"{name} | {device.type} | {torch.get_num_threads()} threads | torch {torch.__version__}"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _matches(ref: Prediction, pred: Prediction) -> bool:
    if ref.lesion_probs is not None:
        inside = ref.pre.fov
        if np.abs(ref.lesion_probs - pred.lesion_probs)[:, inside].max(initial=0.0) > MAP_TOLERANCE:
            return False
    if (ref.grade, ref.dme, ref.referable) != (pred.grade, pred.dme, pred.referable):
        return False
    pairs = [(ref.probabilities, pred.probabilities), (ref.dme_probabilities, pred.dme_probabilities)]
    return all(np.abs(np.subtract(a, b)).max(initial=0.0) <= PROB_TOLERANCE for a, b in pairs)


def measure(bundle: Bundle, device: torch.device, settings: list[Setting]) -> tuple[list[float], list[Prediction]]:
    """Seconds per image (after one warm-up pass) and the prediction of each setting, on one synthetic fundus."""
    size = bundle.input_preprocess.size
    image = generate_fundus(seed=0, size=max(size, 64), index=0, grade=3).image  # preprocess resizes it
    pre = preprocess(image, None, bundle.input_preprocess)
    seconds, preds = [], []
    for setting in settings:
        predictor = make_predictor(bundle, device, setting)
        predictor.predict_preprocessed([pre])  # warm-up: kernels and memory for these shapes
        start = time.perf_counter()
        preds.append(predictor.predict_preprocessed([pre])[0])
        seconds.append(time.perf_counter() - start)
    return seconds, preds


def choice_path(fingerprint: str) -> Path:
    """Where the settings chosen for the bundle with ``fingerprint`` are remembered, one per machine."""
    return cache_home() / "choices" / f"{fingerprint}-v{CHOICE_VERSION}.json"


def _remembered(path: Path, key: str) -> Choice | None:
    try:
        entry = json.loads(path.read_text())[key]
        return Choice(Setting(**entry["setting"]), entry["reason"], entry["seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def choose_setting(bundle: Bundle, fingerprint: str, device: torch.device, remember: bool = True) -> Choice:
    """The fastest setting of ``bundle`` on ``device`` whose answers match the reference (see the module docstring).

    A choice remembered for this bundle and machine is reused; otherwise the candidates are measured (a few
    seconds to a minute, once) and, with ``remember``, the choice is stored.
    """
    key = _machine_key(device)
    found = _remembered(choice_path(fingerprint), key) if remember else None
    if found is not None:
        return found
    settings = candidates(bundle, device)
    tile = int(bundle.info.get("tile") or 0)
    seconds, preds = measure(bundle, device, settings)
    eligible = [0] + [i for i, p in enumerate(preds[1:], 1) if _matches(preds[0], p)]  # the reference always
    best = min(eligible, key=lambda i: seconds[i])
    times = {s.describe(tile): round(t, 3) for s, t in zip(settings, seconds, strict=True)}
    reason = (f"fastest of {len(settings)} settings measured on {key.split(' | ')[0]} whose answers match fp32 "
              f"({len(settings) - len(eligible)} did not)")
    choice = Choice(settings[best], reason, times)
    if remember:
        remember_choice(fingerprint, device, choice)
    return choice


def remember_choice(fingerprint: str, device: torch.device | str, choice: Choice) -> None:
    """Store ``choice`` as the setting of the bundle with ``fingerprint`` on this machine (a copy of a bundle can
    take over the setting its source was measured in; a read-only cache only costs the measurement next time)."""
    device = torch.device(device)
    key, path = _machine_key(device), choice_path(fingerprint)
    try:
        stored = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        stored = {}
    stored[key] = choice.record()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(stored, indent=2))
    except (OSError, WriteError):
        pass
