"""BENCHMARKS.md shows what its result files hold: every table on the page is one that its file prints.

Each table names its file (``benchmarks/results/NAME.json``) before it, in its section; ``benchmarks/NAME.py``'s
``report`` renders that file's tables, as ``--report`` prints them, and every line of the page's table must be
one of theirs. No model runs.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"
PAGE = (REPO / "BENCHMARKS.md").read_text()
RESULT = re.compile(r"benchmarks/results/(\w+)\.json")


def page_tables() -> list[tuple[str | None, list[str]]]:
    """Every table of the page (its lines), with the result file named last before it in its section."""
    tables: list[tuple[str | None, list[str]]] = []
    name, table = None, []
    for line in [*PAGE.splitlines(), ""]:
        if line.startswith("|"):
            table.append(line)
            continue
        if table:
            tables.append((name, table))
            table = []
        if line.startswith("## "):
            name = None
        name = ([name, *RESULT.findall(line)])[-1]
    return tables


TABLES = page_tables()


@pytest.fixture(scope="module")
def printed() -> Iterator[Callable[[str], set[str]]]:
    """``printed(NAME)``: the lines ``benchmarks/NAME.py --report`` prints from ``benchmarks/results/NAME.json``."""
    sys.path.insert(0, str(BENCHMARKS))
    lines: dict[str, set[str]] = {}

    def report(name: str) -> set[str]:
        if name not in lines:
            results_io = importlib.import_module("results_io")
            text = importlib.import_module(name).report(results_io.read(results_io.RESULTS / f"{name}.json"))
            lines[name] = set(text.splitlines())
        return lines[name]

    yield report
    sys.path.remove(str(BENCHMARKS))


def test_every_table_names_a_committed_result_file():
    assert len(TABLES) >= 15
    for name, table in TABLES:
        assert name is not None, f"BENCHMARKS.md: no benchmarks/results/*.json named before the table {table[0]}"
        assert (BENCHMARKS / "results" / f"{name}.json").is_file(), f"benchmarks/results/{name}.json is missing"


def test_every_result_file_is_on_the_page_and_says_where_it_came_from():
    named = set(RESULT.findall(PAGE))
    for path in sorted((BENCHMARKS / "results").glob("*.json")):
        assert path.stem in named, f"{path.name} is on no table of BENCHMARKS.md"
        data = json.loads(path.read_text())
        if isinstance(data, dict) and "provenance" in data:  # copied from an earlier report: which run, which command
            assert re.search(r"commits? [0-9a-f]{7}", data["provenance"]), path.name
            assert f"benchmarks/{path.stem}.py" in data["provenance"] + data.get("command", ""), path.name


@pytest.mark.parametrize(("name", "table"), TABLES, ids=[f"{n}:{t[0][:40]}" for n, t in TABLES])
def test_table_is_what_its_result_file_prints(name: str, table: list[str], printed: Callable[[str], set[str]]):
    missing = [line for line in table if line not in printed(name)]
    assert not missing, (f"BENCHMARKS.md lines that `benchmarks/{name}.py --report` does not print from "
                         f"benchmarks/results/{name}.json:\n" + "\n".join(missing))


def test_links_to_the_page_name_its_sections():
    """``BENCHMARKS.md#anchor`` links and ``BENCHMARKS.md, "Section"`` references point at headings the page has."""
    headings = [h.strip() for h in re.findall(r"^#{2,3} (.+)$", PAGE, flags=re.M)]
    anchors = {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}
    docs = [REPO / "README.md", REPO / "BENCHMARKS.md", *sorted((REPO / "docs").rglob("*.md")),
            *sorted((REPO / "release").glob("*/README.md"))]
    for path in docs:
        text = path.read_text()
        links = re.findall(r"BENCHMARKS\.md#([\w-]+)", text) + (re.findall(r"\]\(#([\w-]+)\)", text)
                                                                   if path.name == "BENCHMARKS.md" else [])
        for anchor in links:
            assert anchor in anchors, f"{path.relative_to(REPO)}: no section #{anchor} in BENCHMARKS.md"
        for name in re.findall(r"BENCHMARKS\.md(?:\]\([^)]*\))?,? \"([^\"]+)\"", text):
            assert name in headings, f"{path.relative_to(REPO)}: no section {name!r} in BENCHMARKS.md"
