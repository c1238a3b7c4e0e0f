"""Per-rank part files of a ``drcollab predict`` run and their merge into ``predictions.csv`` / ``.json``.

``predictions.json``::

    {"model": {"name", "fingerprint", "engine", "checkpoint"}, "preprocess": {...},
     "lesions": [...], "grades": [...], "dme_grades": [...],
     "referable": {"dr_min", "dme_min", "threshold", "uses_dme"},   # the rule the flags follow
     "counts": {"predicted", "graded", "ungradable", "predicted_now", "reused", "failed", "skipped"},
     "unfinished": 0,                           # images not reached because the run was interrupted (Ctrl-C);
                                                # the same command again predicts them
     "predictions": [record, ...],              # sorted by id, see outputs.write_image_outputs; ungradable
                                                # images too, with "gradable": false and no grade
     "failures": [{"path", "reason"}, ...],     # image files that could not be decoded or preprocessed
     "skipped": [{"path", "reason"}, ...]}      # non-image or hidden files
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from drcollab.config import PreprocessConfig, ReferableConfig
from drcollab.constants import DME_GRADES, GRADES, LESIONS
from drcollab.errors import DataError
from drcollab.files import atomic_write_text
from drcollab.inference.outputs import CSV_FILE, JSON_FILE, csv_text, strict_json

PARTS_DIR = ".parts"


@dataclass
class Part:
    """One rank's share: records (new and reused), failures, skips and counts."""

    records: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    predicted: int = 0
    reused: int = 0
    unfinished: int = 0  # images not reached before Ctrl-C


def part_path(out_dir: Path, rank: int, world_size: int) -> Path:
    return Path(out_dir) / PARTS_DIR / f"part-{rank:05d}-of-{world_size:05d}.json"


def write_part(out_dir: Path, rank: int, world_size: int, part: Part) -> Path:
    """Write this rank's part file atomically."""
    return atomic_write_text(part_path(out_dir, rank, world_size), json.dumps(asdict(part)))


def read_part(path: Path) -> Part:
    try:
        return Part(**json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError, TypeError) as err:
        raise DataError(path, f"cannot read this prediction part file ({err}); run predict again") from err


def merge_parts(
    out_dir: Path, world_size: int, model: dict[str, str], preprocess: PreprocessConfig,
    referable: ReferableConfig, uses_dme: bool,
) -> Part:
    """Merge the parts of ranks ``0..world_size-1`` into ``predictions.csv`` and ``predictions.json``.

    ``referable`` and ``uses_dme`` (whether the model has a DME head, so the rule looks at DME) are written to
    ``predictions.json`` as the rule the referable flags follow.

    The part files are removed once both outputs are written.
    """
    out_dir = Path(out_dir)
    paths = [part_path(out_dir, r, world_size) for r in range(world_size)]
    merged = Part()
    for part in map(read_part, paths):
        merged.records += part.records
        merged.failures += part.failures
        merged.skipped += part.skipped
        merged.predicted += part.predicted
        merged.reused += part.reused
        merged.unfinished += part.unfinished
    merged.records.sort(key=lambda r: r["id"])
    merged.failures.sort(key=lambda f: f["path"])
    merged.skipped.sort(key=lambda f: f["path"])
    summary = {
        "model": model,
        "preprocess": preprocess.model_dump(mode="json"),
        "lesions": list(LESIONS),
        "grades": list(GRADES),
        "dme_grades": list(DME_GRADES),
        "referable": {**referable.model_dump(), "uses_dme": uses_dme},
        "counts": {
            "predicted": len(merged.records),
            "graded": sum(r["gradable"] for r in merged.records),
            "ungradable": sum(not r["gradable"] for r in merged.records),
            "predicted_now": merged.predicted,
            "reused": merged.reused,
            "failed": len(merged.failures),
            "skipped": len(merged.skipped),
        },
        "unfinished": merged.unfinished,
        "predictions": merged.records,
        "failures": merged.failures,
        "skipped": merged.skipped,
    }
    atomic_write_text(out_dir / CSV_FILE, csv_text(merged.records))
    atomic_write_text(out_dir / JSON_FILE, strict_json(summary))
    shutil.rmtree(out_dir / PARTS_DIR, ignore_errors=True)
    return merged
