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
import io
import time
from pathlib import Path

import yaml
from pydantic import ValidationError

from drcollab.config import changed_fields, format_validation_error, read_yaml, read_yaml_tree
from drcollab.data.folds import ValFold
from drcollab.errors import ConfigError
from drcollab.files import atomic_write_text, remove_stale_temps, writing

CSV_FIELDS = ("time", "stage", "epoch", "step", "global_step", "key", "value")
STATE_FILE = "checkpoints/last.safetensors"  # inside the run folder


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
        return self.root / STATE_FILE

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
            old = read_yaml(self.config_path)
            new = yaml.safe_load(config_text)
            diff = [key for key, _, _ in changed_fields(old, new)]
            if diff:
                raise ConfigError(
                    f"{self.root}: run folder already holds a different config (fields differ: {', '.join(diff[:8])}); "
                    "choose another --out, or --resume it with its own config"
                )
            if self.state_path.exists():
                raise ConfigError(f"{self.root}: run folder already has a checkpoint; continue it with --resume")
        if self.writer:
            atomic_write_text(self.config_path, config_text)

    def remove_stale_temps(self) -> None:
        """Delete the temporary files of a writer killed mid-write (rank 0, at the start of a run).

        Only the folders a run writes into are searched, never the rest of a folder passed as ``--out``.
        """
        if not self.writer:
            return
        models = self.root / "models"
        stage_dirs = sorted(p for p in models.iterdir() if p.is_dir()) if models.is_dir() else []
        for folder in (self.root, self.state_path.parent, self.root / "model", *stage_dirs):
            remove_stale_temps(folder)

    def truncate_metrics(self, global_step: int) -> None:
        """Drop rows logged after the checkpoint a resumed run starts from, so none is duplicated, and any row
        a killed run left half-written."""
        if not self.writer or not self.metrics_path.exists():
            return
        text = self.metrics_path.read_text()
        if not text.endswith("\n"):  # the last row was cut short by a kill: drop it, even if it parses
            text = text[: text.rfind("\n") + 1]
        rows = [r for r in csv.DictReader(io.StringIO(text)) if _complete(r) and int(r["global_step"]) <= global_step]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=CSV_FIELDS)
        w.writeheader()
        w.writerows(rows)
        atomic_write_text(self.metrics_path, buf.getvalue())

    def log(self, stage: str, epoch: int, step: int, global_step: int, values: dict[str, float]) -> None:
        """Append scalars to metrics.csv and TensorBoard (rank 0 only)."""
        if not self.writer or not values:
            return
        new = not self.metrics_path.exists()
        now = f"{time.time():.3f}"
        with writing(self.metrics_path), self.metrics_path.open("a", newline="") as f:
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


def read_val_fold(run_dir: Path) -> ValFold:
    """The validation fold the run in ``run_dir`` held out, from its ``config.yaml``'s ``data`` section alone, so
    a run whose config names training keys since removed (docs/history.md) still gives its fold.

    Raises:
        ConfigError: no config there, an invalid data section, or one that held no fold out (``data.val_fold: null``).
    """
    from drcollab.training.config import DataConfig  # training pulls in torch data code; import when used

    run_dir = Path(run_dir)
    config_path = RunFolder(run_dir).config_path
    if not config_path.is_file():
        raise ConfigError(f"{config_path}: run config not found (--val-fold-of takes a run folder of drcollab train)")
    tree = read_yaml_tree(config_path).get("data") or {}
    try:
        cfg = DataConfig.model_validate(tree)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, f"{config_path}, section data", DataConfig)) from err
    if cfg.val_fold is None:
        raise ConfigError(f"{config_path}: data.val_fold is null, so the run trained on every image and held none out")
    return ValFold(run_dir, cfg.pixel, cfg.image, cfg.n_folds, cfg.val_fold, cfg.fold_seed)


def _complete(row: dict[str | None, str | None]) -> bool:
    """Whether a metrics row has every field and no extra one."""
    if None in row or any(not row.get(f) for f in CSV_FIELDS):
        return False
    return row["global_step"].isdigit()  # type: ignore[union-attr]
