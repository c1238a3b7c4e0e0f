"""On-disk cache of preprocessed images, so each full-size fundus photograph is decoded once.

Layout: ``root/<config digest>/<record name>-<key>.npz`` with ``config.json`` beside the entries
of each config. The key hashes the identity (resolved path, size, mtime_ns) of the image and of
every mask file together with ``cfg.model_dump_json()`` and :data:`CACHE_VERSION`, so editing a
source file or a config value misses. Entries are plain ``.npz`` files (no pickle): the image as
uint8, the FOV and masks as packed bits, the geometry as a JSON string. Each is written to a
temporary file in the same folder and moved into place with ``os.replace``, so processes filling
the cache at once never see a half-written entry; an unreadable entry is deleted and rebuilt.
Deleting the whole folder is always safe.

:class:`GraderInputCache` keeps, the same way, what a frozen G gives the grader for each grading image (its pooled
masks and lesion statistics, ``models/mask_path.py``), in ``root/grader-inputs-<digest>/``: the digest hashes G's
weights, its preprocessing and its tiling (``training/mask_inputs.py``), the key adds the image file's identity.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

import numpy as np

from drcollab.config import PreprocessConfig
from drcollab.data.io import load_sample, read_image
from drcollab.data.preprocess import Geometry, Preprocessed, preprocess
from drcollab.data.records import Record
from drcollab.errors import DataError

log = logging.getLogger(__name__)

CACHE_VERSION = 2  # bump when decoding or preprocessing changes what it produces for the same config
STALE_TMP_S = 3600  # temporary files older than this were left by a crashed writer
_UNREADABLE = (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile)


@functools.lru_cache(maxsize=4096)
def _real_folder(folder: str) -> str:
    return os.path.realpath(folder)


def file_identity(path: Path) -> list[str | int]:
    """``[resolved path, size, mtime_ns]`` of a source file.

    The resolved path equals ``path.resolve()``; a file that is not itself a link costs two system calls, its
    folder being resolved once per process (``Path.resolve`` checks every component of every path: at 100,000
    images that was most of the time to plan a cache fill, BENCHMARKS.md).
    """
    try:
        st = path.stat()
    except FileNotFoundError as err:
        raise DataError(path, "file not found") from err
    text = os.fspath(path) if path.is_absolute() else os.path.join(os.getcwd(), path)  # ".." left to realpath
    if os.path.islink(text):
        return [str(path.resolve()), st.st_size, st.st_mtime_ns]
    return [os.path.join(_real_folder(os.path.dirname(text)), os.path.basename(text)), st.st_size, st.st_mtime_ns]


def _write_atomic(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then move it into place."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_entry(path: Path, entry: Preprocessed, key: str) -> None:
    """Store ``entry`` atomically at ``path``; ``key`` is kept inside to catch misplaced files."""
    arrays = {
        "image": entry.image,  # (S, S, 3) uint8
        "fov": np.packbits(entry.fov, axis=-1),  # (S, ceil(S / 8))
        "meta": np.array(json.dumps({"key": key, "geometry": entry.geometry.to_dict()})),
    }
    if entry.masks is not None:
        arrays["masks"] = np.packbits(entry.masks, axis=-1)  # (L, S, ceil(S / 8))
    _write_atomic(path, lambda f: np.savez(f, **arrays))


def read_entry(path: Path, key: str) -> Preprocessed:
    """Read an entry written with ``key``; any damage raises one of ``_UNREADABLE``."""
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(z["meta"].item())
        if meta["key"] != key:
            raise ValueError(f"entry holds key {meta['key']!r}, expected {key!r}")
        geometry = Geometry.from_dict(meta["geometry"])
        s = geometry.size
        image = z["image"]
        fov = np.unpackbits(z["fov"], axis=-1, count=s).astype(bool)  # (S, S)
        masks = np.unpackbits(z["masks"], axis=-1, count=s).astype(bool) if "masks" in z.files else None
    return Preprocessed(image=image, masks=masks, fov=fov, geometry=geometry)  # checks shapes and dtypes


def _open_folder(folder: Path, config_json: str) -> Path:
    """Create ``folder`` with a ``config.json`` saying what its entries depend on; drop stale temporary files."""
    folder.mkdir(parents=True, exist_ok=True)
    cfg_file = folder / "config.json"
    if not cfg_file.is_file():  # for people browsing the cache
        _write_atomic(cfg_file, lambda f: f.write(config_json.encode()))
    now = time.time()
    for tmp in folder.glob(".*.tmp"):
        try:
            if now - tmp.stat().st_mtime > STALE_TMP_S:
                tmp.unlink()
        except FileNotFoundError:
            pass  # another process finished or removed it meanwhile
    return folder


def _entry_path(folder: Path, record: Record, key: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", record.name)[:80]
    return folder / f"{safe}-{key[:24]}.npz"


def preprocess_record(record: Record, cfg: PreprocessConfig, with_masks: bool = True) -> Preprocessed:
    """Decode a record (its masks too, with ``with_masks``) and preprocess it, without caching.

    Raises:
        DataError: naming the source file when it is missing, undecodable or has no FOV.
    """
    if with_masks:
        sample = load_sample(record)
        image, masks = sample.image, sample.masks
    else:
        image, masks = read_image(record.image_path), None
    try:
        return preprocess(image, masks, cfg)
    except ValueError as err:
        raise DataError(record.image_path, str(err)) from err


class PreprocessCache:
    """Preprocessed images on disk, computed on first use.

    Args:
        root: Cache folder (created if missing); entries for each config live in their own subfolder.
        cfg: The preprocessing settings every entry is computed with.
    """

    def __init__(self, root: str | Path, cfg: PreprocessConfig) -> None:
        self.cfg = cfg
        self._cfg_json = cfg.model_dump_json()
        digest = hashlib.sha256(f"{CACHE_VERSION}:{self._cfg_json}".encode()).hexdigest()[:12]
        self.folder = _open_folder(Path(root) / digest, self._cfg_json)

    def key(self, record: Record) -> str:
        """Hash of the record's source files' identity and the config."""
        files = [file_identity(Path(record.image_path))]
        files += [None if p is None else file_identity(Path(p)) for p in record.mask_paths or ()]
        payload = json.dumps({"version": CACHE_VERSION, "config": self._cfg_json, "files": files})
        return hashlib.sha256(payload.encode()).hexdigest()

    def path(self, record: Record, key: str | None = None) -> Path:
        """Where the record's entry lives (whether or not it exists yet)."""
        return _entry_path(self.folder, record, key or self.key(record))

    def get(self, record: Record) -> Preprocessed:
        """The preprocessed record: read from disk, or decoded, preprocessed and stored.

        Raises:
            DataError: naming the source file when it is missing, undecodable or has no FOV.
        """
        key = self.key(record)
        path = self.path(record, key)
        if path.is_file():
            try:
                return read_entry(path, key)
            except _UNREADABLE as err:
                log.warning("%s: unreadable cache entry (%s); rebuilding it", path, err)
                path.unlink(missing_ok=True)
        entry = preprocess_record(record, self.cfg)
        write_entry(path, entry, key)
        return entry

    def unusable_path(self, record: Record, key: str | None = None) -> Path:
        """Where the mark of a photo the preprocessing cannot use lives (beside its would-be entry)."""
        return self.path(record, key).with_suffix(".unusable")

    def unusable(self, record: Record) -> str | None:
        """Why the record's photo cannot be used (its mark, written by :meth:`build`), or None."""
        path = self.unusable_path(record)
        return path.read_text(encoding="utf-8") if path.is_file() else None

    def build(self, record: Record) -> str | None:
        """Build the record's entry, or mark its photo unusable when it cannot be decoded or holds no field of view;
        returns that reason, else None. A mark is keyed like an entry: a replaced photo is tried again.

        Raises:
            DataError: the photo (or a mask) is missing: a setup error, not a property of the photo.
        """
        key = self.key(record)  # raises DataError for a missing file
        try:
            self.get(record)
        except DataError as err:
            problem = err.problem
            _write_atomic(self.unusable_path(record, key), lambda f: f.write(problem.encode("utf-8")))
            return problem
        return None

    def warm(self, records: Iterable[Record]) -> int:
        """Build the missing entries of ``records``; returns how many were built."""
        built = 0
        for record in records:
            if not self.path(record).is_file():
                self.get(record)
                built += 1
        return built


class GraderInputCache:
    """What a frozen G gives the grader for each grading image: masks pooled to the grader's size as uint8
    levels ``(L, s, s)`` and lesion statistics ``(S,)`` float32, written once by ``training/mask_inputs.py``.

    Args:
        root: Cache folder (the preprocessing cache's).
        identity: Everything the entries depend on besides the image (G's weight digest, its preprocessing,
            tile, overlap, grader factor, versions), JSON-able; its hash names the subfolder.
    """

    def __init__(self, root: str | Path, identity: dict) -> None:
        self._identity_json = json.dumps(identity, sort_keys=True)
        self.digest = hashlib.sha256(self._identity_json.encode()).hexdigest()
        self.folder = _open_folder(Path(root) / f"grader-inputs-{self.digest[:12]}", self._identity_json)

    def key(self, record: Record) -> str:
        """Hash of the identity and the record's image file."""
        payload = json.dumps({"identity": self.digest, "image": file_identity(Path(record.image_path))})
        return hashlib.sha256(payload.encode()).hexdigest()

    def path(self, record: Record, key: str | None = None) -> Path:
        return _entry_path(self.folder, record, key or self.key(record))

    def put(self, record: Record, masks: np.ndarray, stats: np.ndarray) -> None:
        """Store uint8 ``masks`` ``(L, s, s)`` and float32 ``stats`` ``(S,)`` atomically."""
        key = self.key(record)
        meta = np.array(json.dumps({"key": key}))
        _write_atomic(self.path(record, key), lambda f: np.savez(f, masks=masks, stats=stats, meta=meta))

    def get(self, record: Record, stats: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """``(masks uint8 (L, s, s), stats float32 (S,) or None)``.

        Raises:
            DataError: naming the entry when it is missing or unreadable (the precompute writes every one).
        """
        key = self.key(record)
        path = self.path(record, key)
        try:
            with np.load(path, allow_pickle=False) as z:
                if json.loads(z["meta"].item())["key"] != key:
                    raise ValueError("entry holds another key")
                return z["masks"], z["stats"] if stats else None
        except _UNREADABLE as err:
            raise DataError(path, f"G's grader inputs are missing or unreadable ({err}); delete the file and train "
                            "again: the stage recomputes it") from err
