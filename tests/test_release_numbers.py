"""The release's numbers that README.md and the release's README quote are its evaluation's, to the printed digit.

In each README's section on the release, every quoted metric is either a table cell under a known column (``MA
AUC-PR``, ``kappa``, ``referable AUC`` ...) or a ``label value`` pair in the text (``kappa 0.755``). Lesion maps are
scored two ways, so a row of lesion numbers says which in its first cell: ``keep`` (G's raw maps, the release's
``metrics.json``) or ``zero`` (0 outside the field of view, ``benchmarks/results/outside_fov.json``). A number with
two or more decimals that none of these cover fails the test, so no release number goes unchecked. BENCHMARKS.md's
section on the release is checked for the metrics it quotes in its text (its table is its result file's,
``tests/test_benchmarks_page.py``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RELEASE = REPO / "release/drcollab-idrid-cpu"
# (file, section, whether every number of the section must be a quoted metric)
SECTIONS = [(REPO / "README.md", "## Using the released model", True),
            (RELEASE / "README.md", "## How good it is", True),
            (REPO / "BENCHMARKS.md", "## How good is the released model?", False)]
# column or text label -> path in metrics.json
LABELS = {
    "DR accuracy": "grading.accuracy", "kappa": "grading.kappa", "DME accuracy": "dme.accuracy",
    "DME kappa": "dme.kappa", "joint accuracy": "joint.accuracy", "referable AUC": "referable.auc",
    "referable sensitivity": "referable.sensitivity", "referable specificity": "referable.specificity",
    "sensitivity": "referable.sensitivity", "specificity": "referable.specificity",
}
LESION = re.compile(r"(MA|HE|EX|SE) AUC-(PR|ROC)")
IN_TEXT = re.compile(r"(?<![\w-])(" + "|".join(k.replace(" ", r"\s+") for k in sorted(LABELS, key=len, reverse=True))
                     + r")\s+(\d+\.\d+)")  # a label and its number may be split over two lines
DECIMAL = re.compile(r"\d+\.\d{2,}")
SCORED_BY = {"runs/bench_grade/lesion_stats": "idrid_lesion_stats"}  # bench_sources.py rows that score another run


def metrics() -> dict:
    """The release's evaluation, plus its lesion AUC-PR with the maps at 0 outside the FOV as ``zero``."""
    m = json.loads((RELEASE / "metrics.json").read_text())
    fov = json.loads((REPO / "benchmarks/results/outside_fov.json").read_text())
    [row] = [r for r in fov["rows"] if r["bundle"] == "release/drcollab-idrid-cpu"]
    return {**m, "zero": row["zero"]}


def lookup(m: dict, path: str) -> float:
    for key in path.split("."):
        m = m[key]
    return m


def section(path: Path, heading: str) -> str:
    text = path.read_text()
    assert heading in text, f"{path.name}: no section {heading!r}"
    body = text.split(heading, 1)[1]
    return re.split(r"^## ", body, maxsplit=1, flags=re.M)[0]


def quoted(text: str) -> tuple[list[tuple[str, str, str]], list[str]]:
    """``(where, metrics path, printed value)`` of every quoted metric, and the numbers nothing quotes."""
    quotes, rest = [], []
    lines = re.sub(r"```.*?```", "", text, flags=re.S).splitlines()
    k = 0
    while k < len(lines):
        if not lines[k].startswith("|"):
            rest.append(lines[k])
            k += 1
            continue
        table = []
        while k < len(lines) and lines[k].startswith("|"):
            table.append([c.strip() for c in lines[k].strip().strip("|").split("|")])
            k += 1
        head, rows = table[0], table[2:]
        for row in rows:
            for column, cell in zip(head, row, strict=True):
                value = cell.strip("*")
                if not re.fullmatch(r"\d+\.\d+", value):
                    rest.append(cell)
                    continue
                if lesion := LESION.fullmatch(column):
                    mode = "keep" if "keep" in row[0] else "zero" if "zero" in row[0] else None
                    assert mode, f"row {row[0]!r}: say which lesion maps (keep or zero) its {column} scores"
                    kind = "auc_pr" if lesion[2] == "PR" else "auc_roc"
                    path = f"segmentation.{lesion[1]}.{kind}" if mode == "keep" else f"zero.{lesion[1]}"
                    assert kind == "auc_pr" or mode == "keep", f"{column}: recorded for the raw maps only"
                    quotes.append((f"{row[0]} | {column}", path, value))
                elif column in LABELS:
                    quotes.append((column, LABELS[column], value))
                else:
                    rest.append(cell)
    prose = re.sub(r"`[^`]*`", "", "\n".join(rest))
    for match in IN_TEXT.finditer(prose):
        quotes.append((match[0], LABELS[" ".join(match[1].split())], match[2]))
    return quotes, DECIMAL.findall(IN_TEXT.sub("", prose))


@pytest.mark.parametrize(("path", "heading", "complete"), SECTIONS,
                         ids=["README.md", "release README.md", "BENCHMARKS.md"])
def test_release_numbers_are_its_metrics(path: Path, heading: str, complete: bool):
    m = metrics()
    quotes, unquoted = quoted(section(path, heading))
    assert len(quotes) >= 8, f"{path.name}: the release's numbers are missing from {heading!r}"
    wrong = []
    for where, key, printed in quotes:
        digits = len(printed.split(".")[1])
        if f"{lookup(m, key):.{digits}f}" != printed:
            wrong.append(f"{where}: {printed}, but {key} = {lookup(m, key):.{digits}f}")
    assert not wrong, f"{path.name} quotes numbers the release does not have:\n" + "\n".join(wrong)
    assert not (complete and unquoted), (f"{path.name}: numbers in {heading!r} that are not labelled as a metric "
                                         f"(a table column or 'kappa 0.75'), so no test checks them: {unquoted}")


def test_the_release_operating_point_is_its_calibration_record():
    """The release README's "Operating point" quotes bundle.json's threshold and its calibration, to the digit."""
    bundle = json.loads((RELEASE / "bundle.json").read_text())
    record = bundle["calibration"]
    sens, spec = record["sensitivity"], record["specificity"]
    recorded = {f"{bundle['referable']['threshold']:.4f}", f"{record['target']['sensitivity']:.2f}"}
    recorded |= {f"{x:.3f}" for share in (sens, spec) for x in (share["value"], *share["ci95"])}
    text = re.sub(r"```.*?```", "", section(RELEASE / "README.md", "## Operating point"), flags=re.S)
    printed = set(DECIMAL.findall(text))
    assert printed <= recorded, f"numbers the calibration record does not hold: {sorted(printed - recorded)}"
    assert {f"{sens['value']:.3f}", f"{spec['value']:.3f}", f"{record['threshold']:.4f}"} <= printed
    for share in (sens, spec):
        assert f"{share['k']} of {share['n']}" in " ".join(text.split())


def test_the_release_on_other_populations_is_its_bench_sources_row():
    """The release README's "On photos from other populations" table is the bench_sources.py run of its grader (the
    run bundle.json's ``sources`` names, or the row that scores it)."""
    source = json.loads((RELEASE / "bundle.json").read_text())["sources"]["grader"].split(" ")[0]
    run = source.removeprefix("runs/bench_sources/") if source.startswith("runs/bench_sources/") else SCORED_BY[source]
    data = json.loads((REPO / "benchmarks/results/bench_sources.json").read_text())
    [row] = [r for r in (data if isinstance(data, list) else data["rows"]) if r["run"] == run]
    parts = {"IDRiD fold 0": "idrid", "Messidor-2": "messidor2", "EyePACS-256": "eyepacs"}
    columns = {"photos": "n", "DR accuracy": "accuracy", "kappa": "kappa", "referral AUC": "referable_auc",
               "sensitivity": "referable_sensitivity", "specificity": "referable_specificity",
               "normal AUC": "normal_auc"}
    lines = [line for line in section(RELEASE / "README.md", "## On photos from other populations").splitlines()
             if line.startswith("|")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    seen = set()
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        part = parts[cells[0]]
        seen.add(part)
        for column, cell in zip(head[1:], cells[1:], strict=True):
            value = row[f"{part}/{columns[column]}"]
            assert cell == (str(value) if column == "photos" else f"{value:.3f}"), f"{cells[0]} {column}: {cell}"
    assert seen == set(parts.values())
