"""An ONNX graph of a bundle, built once and kept in the cache, keyed by the bundle's fingerprint.

``predict --engine onnx`` (and ``serve``) given a bundle instead of an exported ``.onnx`` file use
:func:`cached_graph`: the first run exports the graph (:func:`drcollab.inference.onnx_export.export_onnx`, a minute
or more on a small CPU) into ``<cache home>/onnx/<fingerprint>.onnx``; every later run loads that file. A bundle whose
files change gets another fingerprint, so its graph is built anew and never a stale one is used.
"""

from __future__ import annotations

from pathlib import Path

from drcollab.files import cache_home
from drcollab.inference.bundle import bundle_fingerprint, load_bundle
from drcollab.inference.onnx_export import export_onnx


def graph_path(fingerprint: str) -> Path:
    """Where the graph of the bundle with ``fingerprint`` is kept."""
    return cache_home() / "onnx" / f"{fingerprint}.onnx"


def cached_graph(checkpoint: str | Path) -> tuple[Path, bool]:
    """The ONNX graph of the bundle at ``checkpoint``, and whether it was built now (False: found in the cache).

    Raises:
        DataError: a missing or invalid bundle.
        ExportError: the graph could not be exported.
    """
    path = graph_path(bundle_fingerprint(load_bundle(checkpoint)))
    if path.is_file():
        return path, False
    export_onnx(checkpoint, path)  # written atomically: an interrupted export leaves no graph behind
    return path, True
