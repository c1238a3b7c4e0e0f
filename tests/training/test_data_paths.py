"""Data paths for big runs: the cache filled in parallel shares, persistent loader workers, uint8 batches,
the barrier after a stage's save and the process-group timeout."""

from __future__ import annotations

import multiprocessing as mp
import os
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import torch
from torch.utils.data import Dataset

from drcollab import distributed
from drcollab.config import GeneratorConfig, PreprocessConfig
from drcollab.data.cache import PreprocessCache
from drcollab.data.sources import DatasetSpec, read_records
from drcollab.models import LesionGenerator
from drcollab.training import stages
from drcollab.training.data import cycle, fill_share, make_loader
from drcollab.training.datasets import FundusDataset
from drcollab.training.sampling import EpochSampler

CFG = PreprocessConfig(size=64)


def _missing(cache_root: Path, data_root: Path) -> list:
    cache = PreprocessCache(cache_root, CFG)
    return [(cache, r) for r in read_records(DatasetSpec(format="generic", root=data_root))]


def _fill(cache_root: Path, data_root: Path, rank: int, world: int) -> None:
    fill_share(_missing(cache_root, data_root), rank, world)


def _entries(cache_root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(cache_root)): p.read_bytes() for p in cache_root.rglob("*.npz")}


def test_parallel_cache_fill_gives_byte_identical_entries_to_the_serial_one(synth_root, tmp_path):
    _fill(tmp_path / "serial", synth_root, 0, 1)
    ranks = [mp.get_context("fork").Process(target=_fill, args=(tmp_path / "parallel", synth_root, r, 3))
             for r in range(3)]
    for p in ranks:
        p.start()
    for p in ranks:
        p.join(120)
        assert p.exitcode == 0
    serial, parallel = _entries(tmp_path / "serial"), _entries(tmp_path / "parallel")
    assert len(serial) == 24 and serial == parallel


def test_each_rank_fills_a_disjoint_share_and_together_all(synth_root, tmp_path):
    missing = _missing(tmp_path / "c", synth_root)
    built = [fill_share(missing, rank, 4) for rank in range(4)]
    assert built == [6, 6, 6, 6] and len(_entries(tmp_path / "c")) == 24


class _Pids(Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, key: tuple[int, int]) -> dict:
        return {"pid": os.getpid()}


def test_cycled_loader_keeps_its_workers_across_passes():
    sampler = EpochSampler(4, seed=0, batch_size=2, drop_last=True)
    loader = make_loader(_Pids(), sampler, 2, 1, torch.device("cpu"))
    stream = cycle(loader, sampler, 0)
    pids = {int(pid) for _ in range(6) for pid in next(stream)["pid"]}  # 3 passes of 2 batches
    assert len(pids) == 1 and os.getpid() not in pids


def test_loaders_send_uint8_images_and_boolean_masks(synth_root, tmp_path):
    cache = PreprocessCache(tmp_path / "c", CFG)
    records = [r for r in read_records(DatasetSpec(format="generic", root=synth_root)) if r.has_masks]
    item = FundusDataset(records, cache.get, labels="masks")[0]
    assert item["image"].dtype == torch.uint8 and item["masks"].dtype == torch.bool


def test_finish_stage_waits_for_every_rank_after_the_models_are_written(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(stages, "barrier", lambda: seen.append(sorted(p.name for p in tmp_path.rglob("*.json"))))
    ctx = SimpleNamespace(
        dist=SimpleNamespace(is_main=True), position=SimpleNamespace(completed=[]),
        cfg=SimpleNamespace(stage=lambda s: SimpleNamespace(epochs=1), name="t"),
        folder=SimpleNamespace(stage_dir=lambda s: tmp_path / s), checkpoint=lambda nets: None,
    )
    g = LesionGenerator(GeneratorConfig(widths=(4, 8, 8, 16, 16)))
    stages.finish_stage(ctx, "seg_pretrain", stages.Nets(generator=g))
    assert seen == [["generator.json"]]


def test_process_group_timeout_reaches_init_process_group(monkeypatch):
    got = {}
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(distributed.dist, "init_process_group", lambda **kw: got.update(kw))
    distributed.setup("cpu", timeout_s=7200)
    assert got == {"backend": "gloo", "timeout": timedelta(seconds=7200)}
