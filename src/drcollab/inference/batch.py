"""``drcollab predict``: run an engine over image files and folders, resumably, on one or several processes.

Each image gets a stable id from its path relative to the input it was found in (``<folder name>/<relative
path>``, or the file name for an image given directly), so a re-run with the same inputs finds its earlier
outputs and skips them. Under ``torchrun --nproc_per_node=N`` rank ``r`` takes every N-th image, writes its
records to ``OUT/.parts/part-<r>-of-<N>.json``, and after a gloo barrier rank 0 merges the parts into
``predictions.csv`` and ``predictions.json`` (see :mod:`drcollab.inference.outputs` for the per-image files).

Before the model sees an image, the gradability check (:mod:`drcollab.inference.gradability`) may find it
*ungradable*: too small or a strip (from its header, before decoding), no field of view, a field of view too few
pixels across for the model, out of focus, over- or under-exposed, or cropped inside the retina. Such an image is
listed among the predictions with ``gradable: false`` and its reasons, and gets no grade, no referable flag and no
lesion maps.

Unreadable files do not stop the run: an image-suffixed file that cannot be decoded (its pixel data cut short,
see :mod:`drcollab.data.header`, or damaged), or for which the model's output is not finite, is a *failure*
(with its reason); a non-image file or a hidden one is *skipped* (with its reason). The output folder is never
searched for inputs.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from drcollab.data.header import ImageLimits
from drcollab.data.scan import FAILURES, scan_images
from drcollab.distributed import DistInfo, barrier
from drcollab.errors import DataError
from drcollab.inference.api import Ready, Ungradable, examine_file
from drcollab.inference.engine import Engine
from drcollab.inference.gradability import GradabilityConfig
from drcollab.inference.grouping import Grouping
from drcollab.inference.outputs import (
    file_sha256,
    finished_record,
    non_finite,
    write_image_outputs,
    write_ungradable,
)
from drcollab.inference.parts import Part, merge_parts, write_part
from drcollab.inference.patient_outputs import PATIENTS_CSV, write_run_patients
from drcollab.inference.patients import NOT_REFERABLE, PATIENT_CANNOT_GRADE, REFER, Patient


@dataclass(frozen=True)
class Item:
    """One image to predict: its stable id and its path."""

    id: str
    path: Path


@dataclass
class RunSummary:
    """Counts of a whole run (on rank 0) or of this rank's share (other ranks)."""

    predicted: int = 0
    reused: int = 0
    ungradable: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    out_dir: Path | None = None
    records: list[dict[str, Any]] = field(default_factory=list)
    unfinished: int = 0  # images not reached before Ctrl-C
    patients: list[Patient] | None = None  # with a grouping: each patient's decision (patients.csv)

    @property
    def succeeded(self) -> int:
        """Images with a record (graded or ungradable), made now or found from an earlier run."""
        return self.predicted + self.reused


class PredictInterrupted(KeyboardInterrupt):
    """Ctrl-C during ``predict``, raised once the images finished so far are in ``predictions.csv`` / ``.json``."""

    def __init__(self, summary: RunSummary) -> None:
        super().__init__(f"interrupted with {summary.unfinished} images not predicted")
        self.summary = summary


@dataclass(frozen=True)
class Checks:
    """The checks an image passes before the model sees it; a record made under other checks is redone."""

    limits: ImageLimits
    quality: GradabilityConfig
    maps: str = "full"  # lesion maps at the photo's resolution (full) or the model's (model), see outputs.py

    def describe(self) -> dict:
        return {"limits": self.limits.model_dump(), "gradability": self.quality.model_dump(), "maps": self.maps}


def assign_ids(inputs: list[Path], paths: list[Path]) -> list[Item]:
    """Give each found image its stable id (see the module docstring).

    Paths are compared as absolute paths without following symlinks, so a link inside an input folder
    keeps the id of where it was found.

    Raises:
        DataError: when two images would get the same id (e.g. two input folders with the same name).
    """
    roots = [Path(os.path.abspath(i)) for i in inputs]
    items: dict[str, Item] = {}
    for path in paths:
        absolute = Path(os.path.abspath(path))
        root = next((r for r in roots if absolute == r or absolute.is_relative_to(r)), None)
        if root is None:
            raise DataError(path, f"is not inside any input ({', '.join(map(str, inputs))})")
        item_id = root.name if absolute == root else f"{root.name}/{absolute.relative_to(root).as_posix()}"
        if item_id in items and Path(os.path.abspath(items[item_id].path)) != absolute:
            raise DataError(path, f"has the same id {item_id!r} as {items[item_id].path}: rename or move one")
        items[item_id] = Item(item_id, path)
    return sorted(items.values(), key=lambda it: it.id)


def _load(engine: Engine, item: Item, checks: Checks) -> Ready | Ungradable | str:
    """Check, decode and preprocess one image (:func:`drcollab.inference.api.examine_file`), or the reason it
    failed."""
    try:
        return examine_file(engine, item.path, checks.limits, checks.quality)
    except DataError as err:
        return err.problem


def _loaded_batches(
    engine: Engine, items: list[Item], batch_size: int, checks: Checks
) -> Iterator[list[tuple[Item, Any]]]:
    """Batches of ``(item, load result)``; the next batch is decoded in threads while the caller predicts."""
    batches = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        pending = [pool.submit(_load, engine, it, checks) for it in batches[0]] if batches else []
        for k, batch in enumerate(batches):
            current = pending
            nxt = batches[k + 1] if k + 1 < len(batches) else []
            pending = [pool.submit(_load, engine, it, checks) for it in nxt]
            yield [(it, f.result()) for it, f in zip(batch, current, strict=True)]


def predict_share(
    engine: Engine, items: list[Item], out_dir: Path, batch_size: int, progress: bool, checks: Checks
) -> Part:
    """Predict ``items`` (one rank's share), reusing finished outputs; returns this share's records and failures.

    A finished output is reused only when it was made from the same file content (the sha256 of its bytes): a
    photo replaced under the same name is predicted again. An ungradable image gets a record without a grade;
    one whose model output is not finite is a failure with that reason: neither ever gets a grade. On Ctrl-C the
    share stops after the images already done, with ``unfinished`` counting the rest.
    """
    part = Part()
    check = checks.describe()
    with ThreadPoolExecutor(max_workers=4) as pool:  # hashing reads every file: overlap the reads
        digests = dict(zip((it.id for it in items), pool.map(file_sha256, (it.path for it in items)), strict=True))
    todo = []
    for item in items:
        record = finished_record(out_dir, item.id, digests[item.id], engine.fingerprint, check)
        if record is None:
            todo.append(item)
        else:
            part.records.append(record)
            part.reused += 1
    batches = _loaded_batches(engine, todo, batch_size, checks)
    writes = Writes(part, 2 * batch_size)
    with tqdm(total=len(todo), desc="predict", unit="img", disable=not progress) as bar, closing(batches), \
            writes:
        try:
            for batch in batches:
                _predict_batch(engine, batch, out_dir, digests, check, checks.maps, part, writes)
                bar.update(len(batch))
            writes.wait()
        except KeyboardInterrupt:  # the bar is closed on leaving the block, so what follows starts a new line
            writes.wait()  # what was predicted is written before the run stops
            part.unfinished = len(todo) - part.predicted - len(part.failures)
    return part


class Writes:
    """Outputs written in a thread beside the next forward passes, at most ``limit`` waiting (each holds its
    photo); records reach ``part`` in the order the images were predicted. A write error is raised by
    :meth:`wait` or the next :meth:`submit`."""

    def __init__(self, part: Part, limit: int) -> None:
        self.part, self.limit = part, limit
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.pending: deque[Future] = deque()
        self.failed = False

    def submit(self, fn: Callable[..., dict[str, Any]], *args: Any) -> None:
        while len(self.pending) >= self.limit:
            self._collect()
        self.pending.append(self.pool.submit(self._run, fn, *args))

    def _run(self, fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any] | None:
        """One write; after a failed one the rest are skipped, as when the writes ran in line."""
        if self.failed:
            return None
        try:
            return fn(*args)
        except BaseException:
            self.failed = True
            raise

    def _collect(self) -> None:
        record = self.pending.popleft().result()
        if record is not None:
            self.part.records.append(record)
            self.part.predicted += 1

    def wait(self) -> None:
        while self.pending:
            self._collect()

    def __enter__(self) -> Writes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool.shutdown(wait=True)


def _predict_batch(
    engine: Engine, batch: list[tuple[Item, Any]], out_dir: Path, digests: dict[str, str | None], check: dict,
    maps: str, part: Part, writes: Writes,
) -> None:
    """Grade the loaded images of one batch and queue their outputs, adding records and failures to ``part``."""
    good = [(it, res) for it, res in batch if isinstance(res, Ready)]
    part.failures += [{"path": str(it.path), "reason": res} for it, res in batch if isinstance(res, str)]
    for it, res in batch:
        if isinstance(res, Ungradable):
            quality = {"measures": res.measures, "check": check}
            part.records.append(write_ungradable(out_dir, it.id, it.path, digests[it.id], res.size_wh, res.reasons,
                                                 engine.fingerprint, quality))
            part.predicted += 1
    preds = engine.predictor.predict_preprocessed([res.pre for _, res in good]) if good else []
    for (item, res), pred in zip(good, preds, strict=True):
        reason = non_finite(pred)
        if reason is not None:
            part.failures.append({"path": str(item.path), "reason": reason})
            continue
        quality = {"measures": res.measures, "check": check}
        writes.submit(write_image_outputs, out_dir, item.id, item.path, digests[item.id], res.image, pred,
                      engine.fingerprint, quality, maps)


def predict_images(
    engine: Engine,
    inputs: list[Path],
    out_dir: Path,
    batch_size: int = 4,
    dist: DistInfo | None = None,
    progress: bool = True,
    limits: ImageLimits | None = None,
    quality: GradabilityConfig | None = None,
    maps: str = "full",
    grouping: Grouping | None = None,
) -> RunSummary:
    """Predict every image under ``inputs`` into ``out_dir`` (this rank's share when ``dist`` spans processes).

    Returns the merged summary on rank 0 (after writing ``predictions.csv`` / ``.json``), this rank's own
    counts elsewhere.

    On Ctrl-C in a single process, ``predictions.csv`` / ``.json`` are written for the images finished so far
    (``unfinished`` in the JSON counts the rest) before :class:`PredictInterrupted` is raised; under ``torchrun``
    no rank waits for the others, so they are left as they were. Either way the same command again predicts the
    rest and lists every image.

    Args:
        limits: The size and aspect floor below which an image is ungradable (default: :class:`ImageLimits`'s).
        quality: The gradability thresholds (default: :class:`GradabilityConfig`'s).
        maps: Lesion maps at the photo's resolution (``full``) or at the model's (``model``, with the geometry that
            maps them back), see :mod:`drcollab.inference.outputs`.
        grouping: Which patient and eye each photo belongs to (:mod:`drcollab.inference.grouping`); checked against
            the images found before any is predicted, and a finished run writes ``patients.csv`` / ``.json`` and
            ``eyes.csv`` (:mod:`drcollab.inference.patient_outputs`).

    Raises:
        DataError: an input that does not exist or is the output folder, two images with the same id, or a grouping
            that does not fit the images.
        PredictInterrupted: Ctrl-C, after the outputs above were written.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    dist = dist or DistInfo()
    out_dir = Path(out_dir)
    _check_out_dir(list(inputs), out_dir)
    paths, report = scan_images(list(inputs), exclude=[out_dir])
    items = assign_ids(list(inputs), paths)
    # A photo whose file fails (a broken link, an unreadable header) still belongs to its eye: it counts as not graded.
    failed = assign_ids(list(inputs), [path for path, reason in report.skipped if reason.startswith(FAILURES)])
    photos = {it.id: it.path for it in failed + items}
    assignment = None if grouping is None else grouping.assign(photos)
    share = items[dist.rank :: dist.world_size]
    checks = Checks(limits or ImageLimits(), quality or GradabilityConfig(), maps)
    part = predict_share(engine, share, out_dir, batch_size, progress and dist.is_main, checks)
    if dist.is_main:  # scan results are the same on every rank: rank 0 reports them once
        for path, reason in report.skipped:
            entry = {"path": str(path), "reason": reason}
            (part.failures if reason.startswith(FAILURES) else part.skipped).append(entry)
    write_part(out_dir, dist.rank, dist.world_size, part)
    if part.unfinished and dist.enabled:  # Ctrl-C reaches every rank: none waits at the barrier for the others
        raise KeyboardInterrupt
    barrier()
    if not dist.is_main:
        return RunSummary(part.predicted, part.reused, _ungradable(part.records), part.failures, part.skipped,
                          out_dir)
    predictor = engine.predictor
    merged = merge_parts(out_dir, dist.world_size, engine.describe(), predictor.input_preprocess, predictor.referable,
                         predictor.has_dme)
    summary = RunSummary(merged.predicted, merged.reused, _ungradable(merged.records), merged.failures,
                         merged.skipped, out_dir, merged.records, merged.unfinished)
    if merged.unfinished:
        raise PredictInterrupted(summary)
    if assignment is not None:
        referable = {**predictor.referable.model_dump(), "uses_dme": predictor.has_dme}
        summary.patients = write_run_patients(out_dir, grouping.source, assignment, merged.records, merged.failures,
                                              photos, referable)
    return summary


def _ungradable(records: list[dict[str, Any]]) -> int:
    return sum(not r["gradable"] for r in records)


def _check_out_dir(inputs: list[Path], out_dir: Path) -> None:
    """Refuse an output folder that is an input or holds one: outputs and inputs would mix.

    (An output folder *inside* an input folder is fine: the scan never enters it.)
    """
    out = Path(os.path.abspath(out_dir))
    for item in inputs:
        absolute = Path(os.path.abspath(item))
        if absolute == out or absolute.is_relative_to(out):
            raise DataError(item, f"is inside the output folder {out_dir}: choose an --out outside the inputs")


def describe(summary: RunSummary) -> str:
    """A few lines for the terminal: counts, then every ungradable image and failure with its reason."""
    lines = [
        f"predicted {summary.succeeded} images ({summary.predicted} now, {summary.reused} from an earlier run; "
        f"{summary.ungradable} ungradable, not graded), {len(summary.failures)} failed, {len(summary.skipped)} "
        f"skipped; outputs in {summary.out_dir}"
    ]
    lines += [f"  ungradable: {r['path']}: {'; '.join(r['ungradable_reasons'])}"
              for r in summary.records if not r["gradable"]]
    lines += [f"  failed: {f['path']}: {f['reason']}" for f in summary.failures]
    lines += [f"  skipped: {s['path']}: {s['reason']}" for s in summary.skipped]
    if summary.patients is not None:
        lines.append(_patients_line(summary))
    return "\n".join(lines)


def _patients_line(summary: RunSummary) -> str:
    """E.g. ``patients: 3 (1 refer, 1 cannot grade — re-photograph, 1 not referable) in OUT/patients.csv``."""
    decisions = [p.decision for p in summary.patients or []]
    told = ", ".join(f"{decisions.count(d)} {d}" for d in (REFER, PATIENT_CANNOT_GRADE, NOT_REFERABLE))
    return f"patients: {len(summary.patients or [])} ({told}) in {summary.out_dir / PATIENTS_CSV}"
