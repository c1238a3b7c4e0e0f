"""The ONNX graph of a bundle is built once per bundle content and reused from the cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drcollab.inference import onnx_cache


@pytest.fixture
def exports(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Path]:
    """Count the exports into an empty cache: each writes a stand-in graph (the real export: test_onnx.py)."""
    monkeypatch.setenv("DRCOLLAB_CACHE_HOME", str(tmp_path / "cache"))
    made: list[Path] = []

    def fake_export(checkpoint: Path, out: Path) -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(b"graph of " + str(checkpoint).encode())
        made.append(out)

    monkeypatch.setattr(onnx_cache, "export_onnx", fake_export)
    return made


def test_the_graph_is_built_once_and_reused(tiny_bundle: Path, exports: list[Path]) -> None:
    first, built = onnx_cache.cached_graph(tiny_bundle)
    assert built and first.is_file() and exports == [first]
    again, built_again = onnx_cache.cached_graph(tiny_bundle)
    assert (again, built_again) == (first, False) and len(exports) == 1  # not rebuilt


def test_a_changed_bundle_gets_a_new_graph(tiny_bundle: Path, exports: list[Path]) -> None:
    old, _ = onnx_cache.cached_graph(tiny_bundle)
    info = json.loads((tiny_bundle / "bundle.json").read_text())
    info["referable"] = {"dr_min": 3, "dme_min": 1, "threshold": 0.4}  # another model answer: another graph
    (tiny_bundle / "bundle.json").write_text(json.dumps(info))
    new, built = onnx_cache.cached_graph(tiny_bundle)
    assert built and new != old and len(exports) == 2
