"""The committed results of the benchmarks, ``benchmarks/results/<name>.json``, and the Markdown tables they print.

Each benchmark writes its numbers to its own file (``--json`` names another path) and prints the table that
BENCHMARKS.md shows; ``--report`` prints that table again from the file alone, measuring nothing, so the page can
be checked against its files (``tests/test_benchmarks_page.py``). A file has the command and machine that made it
and its ``rows``; a file whose numbers were copied from an earlier report, not written by a run of its script,
says so in a ``provenance`` field.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
MISSING = "–"


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    """``--json`` (where the results go, default ``benchmarks/results/NAME.json``) and ``--report``."""
    parser.add_argument("--json", type=Path, default=RESULTS / f"{name}.json",
                        help="where the results are written, and read by --report")
    parser.add_argument("--report", action="store_true", help="print the table from --json, measuring nothing")


def printed_report(args: argparse.Namespace, report: Callable[[Any], str]) -> bool:
    """With ``--report``: print ``report`` of the results file and say so (the caller then stops)."""
    if args.report:
        print(report(read(args.json)))
    return bool(args.report)


def idrid_root() -> str:
    """``$DRCOLLAB_IDRID``, or stop with the one line that says to set it."""
    if "DRCOLLAB_IDRID" not in os.environ:
        sys.exit("set DRCOLLAB_IDRID to the IDRiD root (the folder holding 'A. Segmentation')")
    return os.environ["DRCOLLAB_IDRID"]


def write(path: Path, rows: list[dict], **fields: Any) -> dict:
    """Write ``{"command", "machine", **fields, "rows"}`` to ``path``; returns what was written."""
    data = {"command": command(), "machine": machine(), **fields, "rows": rows}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    return data


def read(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def command() -> str:
    """This process's command line as BENCHMARKS.md quotes it."""
    script = os.path.relpath(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
    return " ".join([".venv/bin/python", script, *sys.argv[1:]])


def machine() -> str:
    """CPU model and count, Python and (when it is installed) torch version."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if "model name" in line]
        model = names[0] if names else model
    text = f"{model}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}"
    try:
        import torch
    except ImportError:
        return text
    return f"{text}, torch {torch.__version__} ({torch.get_num_threads()} threads)"


def number(value: float | None, spec: str = ".3f", suffix: str = "") -> str:
    """``value`` formatted, or a dash where it was not measured."""
    return MISSING if value is None else f"{value:{spec}}{suffix}"


def markdown(head: Iterable[str], rows: Iterable[Iterable[str]], align: str) -> str:
    """A Markdown table; ``align`` has one letter per column, ``l`` or ``r``."""
    lines = ["| " + " | ".join(head) + " |", "|" + "".join("---:|" if a == "r" else "---|" for a in align)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines) + "\n"
