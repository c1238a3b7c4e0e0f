"""The paper's numbers (paper_results.json) and the paper-shaped markdown tables."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from drcollab.constants import LESIONS
from drcollab.evaluation.report import Row, load_paper, paper_rows, paper_tables, render_report, table1, table3

PAPER_DIR = Path(__file__).resolve().parents[3] / "shared" / "paper"  # beside the repo, like the data
METRIC_KEYS = {"grading": {"accuracy", "kappa"}, "messidor": {"referral", "normal"}, "segmentation": set(LESIONS)}


def _numbers(tree: object, path: str = "") -> list[tuple[str, float]]:
    if isinstance(tree, dict):
        return [x for k, v in tree.items() if k != "rank" for x in _numbers(v, f"{path}.{k}")]
    return [(path, tree)] if isinstance(tree, float) else []


def test_every_entry_names_its_table_dataset_and_known_metrics() -> None:
    paper = load_paper()
    counts: dict[tuple[str, str], int] = {}
    for e in paper["entries"]:
        assert e["table"] in paper["tables"] and e["dataset"] in paper["evaluated_on"], e
        metrics = set(e) - {"table", "method", "dataset", "note"}
        assert len(metrics) == 1 and METRIC_KEYS[next(iter(metrics))] >= set(e[next(iter(metrics))]), e
        counts[e["table"], e["dataset"]] = counts.get((e["table"], e["dataset"]), 0) + 1
    assert counts == {("Table 1", "IDRiD"): 4, ("Table 1", "EyePACS"): 4, ("Table 2", "Messidor"): 4,
                      ("Table 3", "IDRiD"): 9, ("Table 4", "EyePACS"): 6, ("Table 4", "Messidor"): 6}


def test_every_number_appears_in_the_paper_text() -> None:
    files = sorted(PAPER_DIR.glob("*.md"))
    if not files:
        pytest.skip("paper text not available")
    text = files[0].read_text()
    paper = load_paper()
    for e in paper["entries"]:
        decimals = paper["tables"][e["table"]]["decimals"]
        for path, value in _numbers(e):
            assert f"{value:.{decimals}f}" in text or str(value) in text, (e["table"], e["method"], path, value)


def test_challenge_rows_show_ranks_and_dashes() -> None:
    text = table3([])
    assert text is None  # no segmentation row of ours: no table
    ours = Row("**run**", "validation fold 0 of 5 of the IDRiD training split",
               {"IDRiD": {"segmentation": {les: {"auc_roc": 0.5, "auc_pr": 0.25} for les in LESIONS}}})
    text = table3([ours])
    lines = text.splitlines()
    vrt = next(line for line in lines if line.startswith("| VRT "))
    assert "0.4951 (2)" in vrt and "0.7127 (11)" in vrt and vrt.count("–") == 4
    patech = next(line for line in lines if line.startswith("| PATech "))
    assert patech.rstrip(" |").endswith("–")  # no soft-exudate entry
    assert lines[-1] == "| **run** | validation fold 0 of 5 of the IDRiD training split | " + " | ".join(
        ["0.5000", "0.2500"] * 4) + " |"
    assert len([line for line in lines if line.startswith("| ")]) == 1 + 9 + 1  # header, paper rows, ours


def test_table1_puts_our_numbers_under_the_dataset_they_came_from() -> None:
    ours = Row("**run**", "the generic set 'synth'", {"generic": {"grading": {"accuracy": 0.5, "kappa": 0.25}}})
    text = table1([ours])
    header = next(line for line in text.splitlines() if line.startswith("| Method"))
    assert header.endswith("generic Acc. | generic Kappa |")
    assert text.splitlines()[-1].endswith("| – | – | – | – | 0.5000 | 0.2500 |")
    ori = next(line for line in text.splitlines() if line.startswith("| Ori "))
    assert "paper: IDRiD test split / EyePACS test set" in ori and "0.8458" in ori


def test_sections_follow_the_metrics_we_have() -> None:
    grading_only = Row("x", "y", {"EyePACS": {"grading": {"accuracy": 0.5, "kappa": 0.5}}})
    keys = [key for key, _, _ in paper_tables([grading_only])]
    assert keys == ["grading", "sota"]  # Table 4's EyePACS kappa rows apply to an EyePACS evaluation
    idrid = Row("x", "y", {"IDRiD": {"grading": {"accuracy": 0.5, "kappa": 0.5}}})
    assert [key for key, _, _ in paper_tables([idrid])] == ["grading"]
    assert [r.label for r in paper_rows("Table 4", "EyePACS")][-1] == "Zhou et al. (the paper's Ours)"
    assert re.search(r"0\.872\b", paper_tables([grading_only])[1][2])


def _messidor2_metrics(dme: dict | None) -> dict:
    """A Messidor-2 evaluation's metrics.json, the parts report.md reads."""
    return {
        "model": {"name": "m"}, "description": "the Messidor-2 set", "checkpoint": "runs/m",
        "drcollab_version": "0", "created": "today", "files": {},
        "data": {"dataset": "Messidor-2", "root": None}, "counts": {"segmentation": 0, "grading": 5},
        "settings": {"device": "cpu", "batch_size": 1, "tile": None, "bins": 16, "threshold": 0.5},
        "segmentation": None, "messidor": None, "joint": None, "referable": None,
        "grading": {"accuracy": 0.6, "kappa": 0.5, "confusion": [[1] * 5] * 5, "n": 5,
                    "normal": {"auc": 2 / 3, "accuracy": 0.4, "threshold": 0.5, "n_pos": 2, "n_neg": 3},
                    "referral": {"auc": 0.75, "accuracy": 0.8, "threshold": 0.5, "n_pos": 3, "n_neg": 2}},
        "dme": dme,
    }


def test_report_shows_the_normal_task_and_dme_with_partial_labels() -> None:
    dme = {"accuracy": 0.75, "kappa": 0.5, "confusion": [[1, 0, 0], [1, 0, 0], [0, 0, 2]], "n": 4,
           "accuracy_with_partial": 4 / 6, "n_partial": 2, "referable_dme_auc": 0.75, "referable_dme_n_pos": 2,
           "referable_dme_n_neg": 4}
    text = render_report(_messidor2_metrics(dme))
    grading = text.split("## DR grading (Table 1)", 1)[1].split("\n## ", 1)[0]
    assert ("Normal (grade 0 against grades 1-4): AUC 0.6667, accuracy 0.4000 at P(grade 0) >= 0.5; 2 normal and 3 "
            "other images.") in grading
    assert ("Referral (grade >= 2 or referable DME, risk 2): AUC 0.7500, accuracy 0.8000 at P >= 0.5; 3 referable "
            "and 2 other images.") in grading
    section = text.split("## DME and referable", 1)[1]
    assert "| 0.7500 | 0.5000 |" in section  # DME Acc. stays the exact labels' number
    assert "DME with partial labels: accuracy 0.6667 over 4 exact and 2 partial labels" in section
    assert "Referable DME (risk 2) AUC of P(risk 2): 0.7500, 2 with risk 2 against 4 ruled out." in section


def test_report_of_exact_dme_labels_and_an_older_grading_entry_has_no_new_lines() -> None:
    metrics = _messidor2_metrics({"accuracy": 0.75, "kappa": 0.5, "confusion": [[1, 0, 0]] * 3, "n": 4,
                                  "accuracy_with_partial": 0.75, "n_partial": 0, "referable_dme_auc": None,
                                  "referable_dme_n_pos": 0, "referable_dme_n_neg": 4})
    del metrics["grading"]["normal"], metrics["grading"]["referral"]  # metrics.json written before these tasks
    text = render_report(metrics)
    assert "## DME and referable" in text and "partial labels" not in text and "Normal (grade 0" not in text


def test_a_messidor2_evaluation_fills_tables_2_and_4_from_its_referral_and_normal_tasks() -> None:
    metrics = _messidor2_metrics(None)
    ours = Row("**m**", "the Messidor-2 set", {"Messidor-2": metrics})
    tables = {key: text for key, _, text in paper_tables([ours])}
    assert set(tables) == {"grading", "messidor", "sota"}
    last = tables["messidor"].splitlines()[-1]
    assert last == "| **m** | the Messidor-2 set | 0.7500 | 0.8000 | 0.6667 | 0.4000 |"
    assert tables["sota"].splitlines()[-1] == last  # Table 4's Messidor part: the paper's rows, then ours
    del metrics["grading"]["referral"]  # an evaluation from before the referral task: no Table 2 row
    assert "messidor" not in {key for key, _, _ in paper_tables([ours])}
