"""The preprocessing cache: hits equal misses, keys follow sources and config, writes are atomic."""

from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

import drcollab.data.cache as cache_mod
from drcollab.config import PreprocessConfig
from drcollab.data.cache import PreprocessCache
from drcollab.data.preprocess import Preprocessed
from drcollab.data.records import Record
from drcollab.errors import DataError

CFG = PreprocessConfig(size=96)


def write_record(folder: Path, name: str, seed: int, size: tuple[int, int] = (300, 400)) -> Record:
    """A synthetic fundus PNG with MA and EX masks (HE, SE absent)."""
    rng = np.random.default_rng(seed)
    h, w = size
    img = rng.integers(0, 10, size=(h, w, 3), dtype=np.uint8)
    cv2.circle(img, (w // 2, h // 2), int(0.45 * h), (190, 95, 35), -1)
    img = cv2.add(img, rng.integers(0, 20, size=(h, w, 3), dtype=np.uint8))
    ma = np.zeros((h, w), np.uint8)
    ma[h // 2, w // 2 + 10] = 255  # a one-pixel microaneurysm
    ex = np.zeros((h, w), np.uint8)
    cv2.circle(ex, (w // 2 - 30, h // 2), 12, 255, -1)
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / f"{name}.png"), img[..., ::-1])  # RGB -> BGR for OpenCV
    cv2.imwrite(str(folder / f"{name}_MA.png"), ma)
    cv2.imwrite(str(folder / f"{name}_EX.png"), ex)
    masks = (folder / f"{name}_MA.png", None, folder / f"{name}_EX.png", None)
    return Record(name=name, image_path=folder / f"{name}.png", mask_paths=masks, source="synthetic")


def assert_same(a: Preprocessed, b: Preprocessed) -> None:
    assert np.array_equal(a.image, b.image) and np.array_equal(a.fov, b.fov)
    assert (a.masks is None and b.masks is None) or np.array_equal(a.masks, b.masks)
    assert a.geometry == b.geometry


def entries(root: Path) -> list[Path]:
    return sorted(root.rglob("*.npz"))


def leftovers(root: Path) -> list[Path]:
    """Anything that is neither an entry nor a config file (e.g. temporary files)."""
    return [p for p in root.rglob("*") if p.is_file() and p.suffix != ".npz" and p.name != "config.json"]


def test_hit_equals_miss_and_skips_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    record = write_record(tmp_path / "src", "a", seed=0)
    cache = PreprocessCache(tmp_path / "cache", CFG)
    miss = cache.get(record)
    assert miss.masks.shape == (4, 96, 96) and miss.masks[0].sum() >= 1  # the one-pixel MA survives
    assert entries(tmp_path / "cache") == [cache.path(record)]

    def no_decode(record: Record) -> None:
        raise AssertionError("a hit must not decode the source")

    monkeypatch.setattr(cache_mod, "load_sample", no_decode)
    hit = PreprocessCache(tmp_path / "cache", CFG).get(record)
    assert_same(hit, miss)


def test_record_without_masks(tmp_path: Path) -> None:
    record = write_record(tmp_path / "src", "a", seed=0)
    record = Record(name="a", image_path=record.image_path)
    cache = PreprocessCache(tmp_path / "cache", CFG)
    miss = cache.get(record)
    assert miss.masks is None
    assert_same(cache.get(record), miss)


def test_config_change_and_touched_source_miss(tmp_path: Path) -> None:
    record = write_record(tmp_path / "src", "a", seed=0)
    cache = PreprocessCache(tmp_path / "cache", CFG)
    cache.get(record)
    other = PreprocessCache(tmp_path / "cache", CFG.model_copy(update={"sigma_fraction": 0.05}))
    assert other.path(record) != cache.path(record)
    assert other.warm([record]) == 1  # built: a miss
    assert cache.warm([record]) == 0  # still a hit for the first config

    st = record.mask_paths[2].stat()
    os.utime(record.mask_paths[2], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # touch one mask
    assert cache.warm([record]) == 1
    assert len(entries(tmp_path / "cache")) == 3


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_damaged_entry_is_rebuilt(tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture) -> None:
    record = write_record(tmp_path / "src", "a", seed=1)
    cache = PreprocessCache(tmp_path / "cache", CFG)
    good = cache.get(record)
    path = cache.path(record)
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "garbage": os.urandom(len(data)), "empty": b""}[damage])
    rebuilt = cache.get(record)
    assert_same(rebuilt, good)
    assert "unreadable cache entry" in caplog.text
    assert_same(cache_mod.read_entry(path, cache.key(record)), good)  # the file on disk is whole again


def test_entry_of_another_key_is_rebuilt(tmp_path: Path) -> None:
    a = write_record(tmp_path / "src", "a", seed=1)
    b = write_record(tmp_path / "src", "b", seed=2)
    cache = PreprocessCache(tmp_path / "cache", CFG)
    cache.get(a)
    cache.path(b).write_bytes(cache.path(a).read_bytes())  # a valid npz in the wrong place
    assert not np.array_equal(cache.get(b).image, cache.get(a).image)


def test_crash_while_writing_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    record = write_record(tmp_path / "src", "a", seed=0)
    cache = PreprocessCache(tmp_path / "cache", CFG)

    def half_write(f, **arrays) -> None:
        f.write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt  # the process is interrupted in the middle of the write

    monkeypatch.setattr(cache_mod.np, "savez", half_write)
    with pytest.raises(KeyboardInterrupt):
        cache.get(record)
    assert entries(tmp_path / "cache") == [] and leftovers(tmp_path / "cache") == []


def test_missing_source_names_the_file(tmp_path: Path) -> None:
    record = write_record(tmp_path / "src", "a", seed=0)
    record.mask_paths[0].unlink()
    with pytest.raises(DataError, match="a_MA.png"):
        PreprocessCache(tmp_path / "cache", CFG).get(record)


def test_black_image_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "black.png"
    cv2.imwrite(str(path), np.zeros((100, 120, 3), np.uint8))
    with pytest.raises(DataError, match="black.png.*no field of view"):
        PreprocessCache(tmp_path / "cache", CFG).get(Record(name="black", image_path=path))


def fill(
    root: Path,
    cfg: PreprocessConfig,
    records: list[Record],
    barrier: mp.synchronize.Barrier,
    misses: mp.sharedctypes.Synchronized,
) -> None:
    """Worker: wait for the other process, then get every record; counts the entries it found missing."""
    cache = PreprocessCache(root, cfg)
    barrier.wait(timeout=120)
    for record in records:
        if not cache.path(record).is_file():
            with misses.get_lock():
                misses.value += 1
        cache.get(record)


def test_two_processes_fill_the_same_entries(tmp_path: Path) -> None:
    records = [write_record(tmp_path / "src", f"r{i}", seed=i, size=(900, 1200)) for i in range(6)]
    cfg = PreprocessConfig(size=256)
    ctx = mp.get_context("spawn")
    barrier, misses = ctx.Barrier(2), ctx.Value("i", 0)
    procs = [ctx.Process(target=fill, args=(tmp_path / "cache", cfg, records, barrier, misses)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0, 0]
    assert misses.value > len(records)  # some entries were built by both processes at once
    assert len(entries(tmp_path / "cache")) == len(records) and leftovers(tmp_path / "cache") == []
    cache = PreprocessCache(tmp_path / "cache", cfg)
    for record in records:
        assert_same(cache_mod.read_entry(cache.path(record), cache.key(record)), cache.get(record))


def test_stale_temporary_files_are_removed(tmp_path: Path) -> None:
    cache = PreprocessCache(tmp_path / "cache", CFG)
    stale = cache.folder / ".x.npz.123.tmp"
    fresh = cache.folder / ".y.npz.456.tmp"  # maybe another process writing right now: kept
    stale.write_bytes(b"x")
    fresh.write_bytes(b"y")
    old = stale.stat().st_mtime - 2 * cache_mod.STALE_TMP_S
    os.utime(stale, (old, old))
    PreprocessCache(tmp_path / "cache", CFG)
    assert not stale.exists() and fresh.exists()


def test_file_identity_resolves_like_path_resolve_through_linked_folders_and_files(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "a.png").write_bytes(b"x")
    (real / "deep").mkdir()
    (tmp_path / "linked").symlink_to(real, target_is_directory=True)
    (tmp_path / "to_deep").symlink_to(real / "deep", target_is_directory=True)
    (tmp_path / "b.png").symlink_to(real / "a.png")
    paths = (real / "a.png", tmp_path / "linked/a.png", tmp_path / "b.png", tmp_path / "to_deep/../a.png")
    for path in paths:
        assert cache_mod.file_identity(path)[0] == str(path.resolve()), path
