"""Markdown tables in the shape of the paper's Tables 1-4, with our rows beside the paper's numbers.

The paper's numbers live in one data file, ``paper_results.json`` (each entry names its source table). Its rows
and ours share one layout, ``{dataset: {"grading": ..., "messidor": ..., "segmentation": ...}}``, the layout of
``metrics.json``, so one renderer serves both. Every row says what it was evaluated on: the paper's rows the
official test sets, ours the description written by ``drcollab evaluate`` (e.g. a validation fold).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from drcollab.constants import LESIONS

PAPER_FILE = "paper_results.json"
MISSING = "–"


@cache
def load_paper() -> dict[str, Any]:
    """The paper's reported numbers (``paper_results.json``)."""
    return json.loads(resources.files("drcollab.evaluation").joinpath(PAPER_FILE).read_text())


@dataclass
class Row:
    """One table row: a label, where it was evaluated, and metrics per dataset."""

    label: str
    evaluated_on: str
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    decimals: int = 4


def paper_rows(table: str, dataset: str | None = None) -> list[Row]:
    """The paper's rows of ``table`` (entries of one method merged), optionally of one dataset only."""
    paper = load_paper()
    decimals = paper["tables"][table]["decimals"]
    rows: dict[str, Row] = {}
    for e in paper["entries"]:
        if e["table"] != table or (dataset is not None and e["dataset"] != dataset):
            continue
        row = rows.setdefault(e["method"], Row(e["method"], "", decimals=decimals))
        row.values[e["dataset"]] = e
    for row in rows.values():
        row.evaluated_on = "paper: " + " / ".join(paper["evaluated_on"][d]["short"] for d in row.values)
    return list(rows.values())


def our_row(metrics: dict[str, Any], label: str | None = None) -> Row:
    """A row from an evaluation's ``metrics.json``; the label defaults to the model's name."""
    name = label or (metrics.get("model") or {}).get("name") or "ours"
    counts = metrics.get("counts", {})
    n = f"n={counts.get('segmentation', 0)} seg / {counts.get('grading', 0)} graded"
    return Row(f"**{name}**", f"{metrics['description']} ({n})", {metrics["data"]["dataset"]: metrics})


def _get(tree: dict[str, Any] | None, path: str) -> Any:
    for key in path.split("."):
        if not isinstance(tree, dict):
            return None
        tree = tree.get(key)
    return tree


def _cell(row: Row, dataset: str, path: str) -> str:
    value = _get(row.values.get(dataset), path)
    if value is None:
        return MISSING
    text = f"{value:.{row.decimals}f}"
    rank = _get(row.values.get(dataset), path.rsplit(".", 1)[0] + ".rank")
    return f"{text} ({rank})" if rank is not None else text


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _with(ours: list[Row], key: str, dataset: str | None = None) -> list[Row]:
    return [r for r in ours for d, v in r.values.items() if v.get(key) and (dataset is None or d == dataset)]


def _caption(table: str, datasets: list[str]) -> str:
    paper = load_paper()
    where = "; ".join(f"{d}: {paper['evaluated_on'][d]['detail']}" for d in datasets)
    return f"*{table} of the paper: {paper['tables'][table]['caption']}. Paper rows copied from the paper ({where}).*"


def table1(ours: list[Row]) -> str | None:
    """Grading accuracy and kappa per dataset (paper: IDRiD, EyePACS; ours: whichever it was evaluated on)."""
    ours = _with(ours, "grading")
    if not ours:
        return None
    datasets = ["IDRiD", "EyePACS"] + sorted({d for r in ours for d in r.values} - {"IDRiD", "EyePACS"})
    header = ["Method", "Evaluated on"] + [f"{d} {m}" for d in datasets for m in ("Acc.", "Kappa")]
    body = [[r.label, r.evaluated_on] + [_cell(r, d, f"grading.{m}") for d in datasets for m in ("accuracy", "kappa")]
            for r in paper_rows("Table 1") + ours]
    return _caption("Table 1", ["IDRiD", "EyePACS"]) + "\n\n" + markdown_table(header, body)


def _referral_source(row: Row) -> tuple[str, str] | None:
    """Where ``row``'s Table 2 numbers are: Messidor's own 0-3 tasks (``messidor.*``) or, on Messidor-2's ICDR
    grades, the grading section's ``referral`` and ``normal`` (``grading.*``); None without either."""
    if _get(row.values.get("Messidor"), "messidor.referral") is not None:
        return "Messidor", "messidor"
    if _get(row.values.get("Messidor-2"), "grading.referral") is not None:
        return "Messidor-2", "grading"
    return None


def _messidor_table(table: str, ours: list[Row]) -> str:
    header = ["Method", "Evaluated on", "Referral AUC", "Referral Acc.", "Normal AUC", "Normal Acc."]
    body = []
    for r in paper_rows(table, "Messidor") + ours:
        dataset, prefix = _referral_source(r) or ("Messidor", "messidor")
        body.append([r.label, r.evaluated_on] + [_cell(r, dataset, f"{prefix}.{task}.{m}") for task in
                                                  ("referral", "normal") for m in ("auc", "accuracy")])
    return markdown_table(header, body)


def table2(ours: list[Row]) -> str | None:
    """Messidor referral / normal AUC and accuracy (Table 2: the paper's ablations); ours on Messidor or Messidor-2
    (referral there: DR >= 2 or referable DME, ``grading_metrics.icdr_referral``)."""
    ours = [r for r in ours if _referral_source(r) is not None]
    if not ours:
        return None
    return _caption("Table 2", ["Messidor"]) + "\n\n" + _messidor_table("Table 2", ours)


def table3(ours: list[Row]) -> str | None:
    """Per-lesion pixel AUC_ROC / AUC_PR (paper: IDRiD test split, incl. the challenge's top three)."""
    ours = _with(ours, "segmentation")
    if not ours:
        return None
    header = ["Method", "Evaluated on"] + [f"{les} {m}" for les in LESIONS for m in ("AUC_ROC", "AUC_PR")]
    body = []
    for r in paper_rows("Table 3") + ours:
        dataset = next(iter(r.values))
        body.append([r.label, r.evaluated_on] + [_cell(r, dataset, f"segmentation.{les}.{m}")
                                                  for les in LESIONS for m in ("auc_roc", "auc_pr")])
    return _caption("Table 3", ["IDRiD"]) + "\n\n" + markdown_table(header, body)


def table4(ours: list[Row]) -> str | None:
    """State of the art: EyePACS kappa and Messidor referral / normal, with our rows on those datasets only."""
    parts = []
    eyepacs = _with(ours, "grading", "EyePACS")
    if eyepacs:
        body = [[r.label, r.evaluated_on, _cell(r, "EyePACS", "grading.kappa")]
                for r in paper_rows("Table 4", "EyePACS") + eyepacs]
        parts.append(markdown_table(["Method", "Evaluated on", "EyePACS Kappa"], body))
    messidor = [r for r in ours if _referral_source(r) is not None]
    if messidor:
        parts.append(_messidor_table("Table 4", messidor))
    if not parts:
        return None
    return _caption("Table 4", ["EyePACS", "Messidor"]) + "\n\n" + "\n\n".join(parts)


def dme_referable_table(metrics: dict[str, Any]) -> str | None:
    """DME accuracy and kappa, the joint DR + DME accuracy and the referable scores, or None when there are none."""
    if metrics.get("dme") is None and metrics.get("joint") is None and metrics.get("referable") is None:
        return None
    row = Row("", "", {"m": metrics})
    header = ["DME Acc.", "DME Kappa", "Joint Acc. (DR and DME)", "Referable Sens.", "Referable Spec.",
              "Referable AUC"]
    paths = ["dme.accuracy", "dme.kappa", "joint.accuracy", "referable.sensitivity", "referable.specificity",
             "referable.auc"]
    return markdown_table(header, [[_cell(row, "m", p) for p in paths]])


def _referable_note(metrics: dict[str, Any]) -> str:
    r = metrics.get("referable")
    if r is None:
        return "Referable: not scored (it needs ICDR grades)."
    rule = r["rule"]
    truth = f"DR grade >= {rule['dr_min']} or DME >= {rule['dme_min']}" if r["uses_dme"] else \
        f"DR grade >= {rule['dr_min']} (the model has no DME head)"
    return (f"Referable = {truth}; flagged when P(referable) >= {r['threshold']:.4g}; {r['n_pos']} referable and "
            f"{r['n_neg']} other images. {_with_interval('Sensitivity', r, 'sensitivity')}; "
            f"{_with_interval('specificity', r, 'specificity')} (95% Wilson score intervals). Joint accuracy: IDRiD "
            "sub-challenge 2, DR grade and DME risk both right.")


def _number(value: float | None, decimals: int = 4) -> str:
    return MISSING if value is None else f"{value:.{decimals}f}"


def _normal_note(grading: dict[str, Any]) -> list[str]:
    """The grading section's Table 2 tasks on the ICDR scale, if scored: normal (DR 0 against the rest, as
    Messidor's "normal") and referral (DR >= 2 or referable DME)."""
    lines = []
    normal, referral = grading.get("normal"), grading.get("referral")
    if normal is not None:
        lines += [f"Normal (grade 0 against grades 1-4): AUC {_number(normal['auc'])}, accuracy "
                  f"{_number(normal['accuracy'])} at P(grade 0) >= {normal['threshold']:.4g}; {normal['n_pos']} "
                  f"normal and {normal['n_neg']} other images.", ""]
    if referral is not None:
        lines += [f"Referral (grade >= 2 or referable DME, risk 2): AUC {_number(referral['auc'])}, accuracy "
                  f"{_number(referral['accuracy'])} at P >= {referral['threshold']:.4g}; {referral['n_pos']} "
                  f"referable and {referral['n_neg']} other images.", ""]
    return lines


def _partial_note(dme: dict[str, Any]) -> list[str]:
    """DME accuracy with partial labels and the referable DME AUC, where the set has partial labels."""
    if not dme.get("n_partial"):
        return []
    return [f"DME with partial labels: accuracy {_number(dme['accuracy_with_partial'])} over {dme['n']} exact and "
            f"{dme['n_partial']} partial labels (a partial label is right when the predicted risk is one it allows; "
            f"DME Acc. above counts exact labels only). Referable DME (risk 2) AUC of P(risk 2): "
            f"{_number(dme['referable_dme_auc'])}, {dme['referable_dme_n_pos']} with risk 2 against "
            f"{dme['referable_dme_n_neg']} ruled out. Referable above judges a photo with a partial DME label by its "
            "DR grade alone.", ""]


def _with_interval(label: str, r: dict[str, Any], key: str) -> str:
    """E.g. ``Sensitivity 0.904 (95% CI 0.794-0.958)``; ``Sensitivity –`` where the share has no case."""
    if r.get(key) is None or r.get(f"{key}_ci95") is None:
        return f"{label} {MISSING}"
    low, high = r[f"{key}_ci95"]
    return f"{label} {r[key]:.3f} (95% CI {low:.3f}-{high:.3f})"


SECTIONS = (("segmentation", "Lesion segmentation (Table 3)", table3), ("grading", "DR grading (Table 1)", table1),
            ("messidor", "Messidor referral and normal (Table 2)", table2),
            ("sota", "State of the art (Table 4)", table4))


def paper_tables(ours: list[Row]) -> list[tuple[str, str, str]]:
    """``(key, heading, markdown)`` of every paper table that our rows have numbers for."""
    out = []
    for key, heading, make in SECTIONS:
        text = make(ours)
        if text is not None:
            out.append((key, heading, text))
    return out


def _facts(metrics: dict[str, Any]) -> list[str]:
    data, s, counts = metrics["data"], metrics["settings"], metrics["counts"]
    fold = data.get("fold")
    fold_text = f"; fold {fold['val_fold']} of {fold['n_folds']} (seed {fold['fold_seed']}) of run {fold['run']}" \
        if fold else ""
    return [
        f"- **Evaluated on:** {metrics['description']}: {counts['segmentation']} images with lesion masks, "
        f"{counts['grading']} graded images",
        f"- **Data:** `{data['root']}` (format {data['format']}, split {data['split']}{fold_text})"
        if data.get("root") else "- **Data:** records passed in by the caller",
        f"- **Checkpoint:** `{metrics['checkpoint']}` (model {metrics['model']['name']!r})",
        f"- **Settings:** device {s['device']}, batch size {s['batch_size']}, tile {s['tile'] or 'whole image'}, "
        f"test-time flips {s.get('tta', 'none')}, {s['bins']} score bins; drcollab {metrics['drcollab_version']}, "
        f"{metrics['created']}",
    ] + [f"- **Not evaluated:** {note}" for note in metrics.get("skipped", [])]


def _lesion_counts(seg: dict[str, Any]) -> str:
    rows = [[les, str(seg[les]["images_with_lesion"]), f"{seg[les]['n_pos']:,}",
             f"{seg[les]['n_pos'] / max(seg[les]['n_pos'] + seg[les]['n_neg'], 1):.5f}"] for les in LESIONS]
    return markdown_table(["Lesion", "Images with the lesion", "Lesion pixels", "Share of all pixels"], rows)


def _confusion(matrix: list[list[int]], rows: str) -> str:
    header = [f"{rows} \\ predicted"] + [str(j) for j in range(len(matrix[0]))]
    return markdown_table(header, [[str(i)] + [str(n) for n in r] for i, r in enumerate(matrix)])


def render_report(metrics: dict[str, Any]) -> str:
    """``report.md`` of one evaluation: what was evaluated, the paper-shaped tables, counts and figures."""
    files = metrics.get("files", {})
    lines = [f"# Evaluation of {metrics['model']['name']!r}", "", *_facts(metrics), ""]
    for key, heading, text in paper_tables([our_row(metrics)]):
        lines += [f"## {heading}", "", text, ""]
        if key == "segmentation":
            lines += ["Pixel-level AUCs pooled over all images at their original resolution (whole image scored; "
                      "an image without a mask file for a lesion counts as all-negative for it).", "",
                      _lesion_counts(metrics["segmentation"]), ""]
            if "curves" in files:
                lines += [f"![ROC and PR curves per lesion]({files['curves']})", ""]
        if key == "grading":
            lines += ["Confusion matrix:", "", _confusion(metrics["grading"]["confusion"], "true"), ""]
            lines += _normal_note(metrics["grading"])
        if key == "messidor" and metrics.get("messidor") is not None:
            lines += ["Rows: Messidor grade 0-3; columns: predicted ICDR grade 0-4. Referral = P(grade >= 2) >= 0.5, "
                      "normal = P(grade 0) >= 0.5.", "", _confusion(metrics["messidor"]["confusion"], "Messidor"), ""]
        elif key == "messidor":
            lines += ["On Messidor-2's ICDR grades: referral = DR grade >= 2 or referable DME (risk 2), scored by "
                      "P(grade >= 2 or DME risk 2); normal = P(grade 0) (the grading section's notes).", ""]
    table = dme_referable_table(metrics)
    if table is not None:
        lines += ["## DME and referable", "", table, "", _referable_note(metrics), ""]
        if metrics.get("dme") is not None:
            lines += _partial_note(metrics["dme"])
            lines += ["DME confusion matrix:", "", _confusion(metrics["dme"]["confusion"], "true"), ""]
    if "referral_roc" in files:
        lines += [f"![Referral ROC curve with the operating point]({files['referral_roc']})", ""]
    if "confusion" in files:
        lines += [f"![Confusion matrix]({files['confusion']})", ""]
    if files.get("overlays"):
        lines += ["## Qualitative results (Fig. 4)", "",
                  f"Ground truth (green) beside the prediction at probability >= {metrics['settings']['threshold']}: "
                  "detected lesion pixels blue, misses yellow, false alarms red.", ""]
        lines += [f"![{p}]({p})" for p in files["overlays"]] + [""]
    return "\n".join(lines)


def render_comparison(runs: list[dict[str, Any]], labels: list[str], curves_png: str | None) -> str:
    """``compare.md``: one row per evaluation in each paper-shaped table."""
    lines = [f"# Comparison of {len(runs)} evaluations", ""]
    for label, m in zip(labels, runs, strict=True):
        lines.append(f"- **{label}**: {m['description']}; checkpoint `{m['checkpoint']}`")
    lines.append("")
    for _, heading, text in paper_tables([our_row(m, label) for m, label in zip(runs, labels, strict=True)]):
        lines += [f"## {heading}", "", text, ""]
    if curves_png:
        lines += [f"![ROC and PR curves per lesion]({curves_png})", ""]
    return "\n".join(lines)
