"""The run folder: resolved config, metrics CSV, TensorBoard logs, checkpoints and final models.

    RUN/
      config.yaml             the resolved config (defaults + file + overrides)
      metrics.csv             tidy log: time, stage, epoch, step, global_step, key, value
      tensorboard/            the same scalars for TensorBoard
      checkpoints/last.safetensors (+ .json)   rolling training state for --resume
      models/<stage>/...      each stage's final networks (safetensors + JSON), e.g. for ablations
"""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path

import yaml

from drcollab.config import dump_config
from drcollab.errors import ConfigError

CSV_FIELDS = ("time", "stage", "epoch", "step", "global_step", "key", "value")


def _diff_keys(a: object, b: object, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for key in sorted(set(a) | set(b)):
            out += _diff_keys(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


class RunFolder:
    """Owns the files of one training run. Only rank 0 writes."""

    def __init__(self, root: Path, writer: bool = True) -> None:
        self.root = Path(root)
        self.writer = writer
        self._tb = None

    @property
    def config_path(self) -> Path:
        return self.root / "config.yaml"

    @property
    def state_path(self) -> Path:
        return self.root / "checkpoints" / "last.safetensors"

    @property
    def metrics_path(self) -> Path:
        return self.root / "metrics.csv"

    def stage_dir(self, stage: str) -> Path:
        return self.root / "models" / stage

    def claim(self, config_text: str) -> None:
        """Write the config into a new run folder; refuse to reuse a folder that holds another run.

        Raises:
            ConfigError: the folder holds a different config (names the differing fields), or the
                same config with a checkpoint (use ``--resume``).
        """
        if self.config_path.exists():
            old = yaml.safe_load(self.config_path.read_text())
            new = yaml.safe_load(config_text)
            diff = _diff_keys(old, new)
            if diff:
                raise ConfigError(
                    f"{self.root}: run folder already holds a different config (fields differ: {', '.join(diff[:8])}); "
                    "choose another --out, or --resume it with its own config"
                )
            if self.state_path.exists():
                raise ConfigError(f"{self.root}: run folder already has a checkpoint; continue it with --resume")
        if self.writer:
            self.root.mkdir(parents=True, exist_ok=True)
            _atomic_write(self.config_path, config_text)

    def write_config(self, config: object) -> None:
        self.claim(dump_config(config))  # type: ignore[arg-type]

    def truncate_metrics(self, global_step: int) -> None:
        """Drop rows logged after the checkpoint a resumed run starts from, so none is duplicated."""
        if not self.writer or not self.metrics_path.exists():
            return
        with self.metrics_path.open(newline="") as f:
            rows = [r for r in csv.DictReader(f) if int(r["global_step"]) <= global_step]
        tmp = self.metrics_path.with_suffix(".csv.tmp")
        with tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
            w.writeheader()
            w.writerows(rows)
        os.replace(tmp, self.metrics_path)

    def log(self, stage: str, epoch: int, step: int, global_step: int, values: dict[str, float]) -> None:
        """Append scalars to metrics.csv and TensorBoard (rank 0 only)."""
        if not self.writer or not values:
            return
        new = not self.metrics_path.exists()
        self.root.mkdir(parents=True, exist_ok=True)
        now = f"{time.time():.3f}"
        with self.metrics_path.open("a", newline="") as f:
            w = csv.writer(f)
            if new:
                w.writerow(CSV_FIELDS)
            for key, value in values.items():
                w.writerow([now, stage, epoch, step, global_step, key, f"{value:.6g}"])
        tb = self._tensorboard()
        for key, value in values.items():
            tb.add_scalar(f"{stage}/{key}", value, global_step)
        tb.flush()

    def _tensorboard(self):  # noqa: ANN202 (tensorboard is imported lazily: it is slow to import)
        if self._tb is None:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(self.root / "tensorboard"))
        return self._tb

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
