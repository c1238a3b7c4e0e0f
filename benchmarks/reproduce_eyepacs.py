"""The paper's EyePACS and Messidor experiments at CPU budget: Table 1's EyePACS column, Tables 2 and 4.

As the paper does, the grader learns from EyePACS and G from IDRiD's pixel-labelled images; Messidor is for testing
alone. Here: EyePACS-256's patient-grouped folds (fold 0 of 5 held out for validation, as ``configs/cpu/base.yaml``
splits every source), IDRiD's G at the grader's 384 px (as every Table 1 row of ``configs/cpu/``), and the whole
shared half of Messidor-2 (872 photos no row trained on) for Table 2. Rows, each an ordinary ``drcollab train``:

* ``g384``: stage 1a alone, G on IDRiD's pixel-labelled training folds (``lesion_pretrained.yaml``);
* ``pretrain``: stage 1b alone on EyePACS-256 from scratch (the plain grader, ``--pretrain-epochs`` epochs);
* ``ori`` / ``lesion_pretrained`` / ``lesion_semi`` / ``lesion_semi_adv``: Table 1's rows (``configs/cpu/``), each
  starting from ``pretrain``'s grader and ``g384``'s G, ``--joint-epochs`` epochs of stage 2 on EyePACS-256.

EyePACS has no DME label, so the grader has no DME head (``grader.dme=false``) and Messidor-2's referral is scored by
P(DR >= 2) against its own truth, DR >= 2 or referable DME (``grading_metrics.icdr_referral``). EyePACS-256's photos
are 256 px across, under the 0.75 x 384 px the gradability rule asks, so they are scored with
``--min-fov-fraction 0.6`` (up-sampled to 384 px, as in training).

    DRCOLLAB_IDRID=../shared/data/IDRiD .venv/bin/python benchmarks/reproduce_eyepacs.py --out runs/eyepacs
    .venv/bin/python benchmarks/reproduce_eyepacs.py --report

G's lesion maps are scored on IDRiD's pixel-labelled fold 0 (11 photos) before stage 2 (``g384``, our CE2) and after
the two rows that train it there on EyePACS-256 photos (X^I = EyePACS-256 instead of IDRiD's graded photos).

Finished rows are reused, an interrupted one resumes; ``OUT/compare/compare.md`` is ``drcollab compare`` of every
evaluation (its Tables 1, 2 and 4); the numbers go to ``benchmarks/results/reproduce_eyepacs.json`` (committed).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import results_io
from reproduce_idrid import DRCOLLAB, SKIP_PRETRAIN, sh, stage_times
from results_io import MISSING, markdown, number

from drcollab.evaluation.report import load_paper

EYEPACS = os.environ.get("DRCOLLAB_EYEPACS", "../shared/data/EyePACS-256")
MESSIDOR2 = os.environ.get("DRCOLLAB_MESSIDOR2", "../shared/data/Messidor-2")
GRADING_ROWS = {"ori": ("Ori", "ori.yaml"), "lesion_pretrained": ("Lesion(Pretrained)", "lesion_pretrained.yaml"),
                "lesion_semi": ("Lesion(Semi)", "lesion_semi.yaml"),
                "lesion_semi_adv": ("Lesion(Semi+Adv)", "lesion_semi_adv.yaml")}
ROWS = ["g384", "pretrain", *GRADING_ROWS]
# scored part -> (evaluate's --format, data root, scored on the run's validation fold, --min-fov-fraction)
PARTS = {"eyepacs": ("eyepacs", EYEPACS, True, "0.6"), "messidor2": ("messidor2", MESSIDOR2, False, None)}
# G's lesion maps on IDRiD's pixel-labelled fold 0 (11 photos), before stage 2 and after the rows that train it there
SEG_ROWS = ["g384", "lesion_semi", "lesion_semi_adv"]
SEG_PART = ("idrid-seg", os.environ.get("DRCOLLAB_IDRID", "../shared/data/IDRiD"), True, None)


def eyepacs_image() -> str:
    return "data.image=" + json.dumps([{"format": "eyepacs", "root": EYEPACS}])


def commands(out: Path, row: str, pretrain_epochs: int, joint_epochs: int) -> list[str]:
    """``drcollab train`` arguments after ``--config`` of ``row``."""
    g = f"init.generator={out / 'g384/models/seg_pretrain/generator'}"
    grader = f"init.grader={out / 'pretrain/models/grade_pretrain/grader'}"
    grading = [eyepacs_image(), "grader.dme=false"]
    if row == "g384":
        return ["configs/cpu/lesion_pretrained.yaml", "name=g384", "grade_pretrain.epochs=0", "joint.epochs=0"]
    if row == "pretrain":
        return ["configs/cpu/lesion_pretrained.yaml", "name=pretrain_eyepacs", *grading, "seg_pretrain.epochs=0",
                g, f"grade_pretrain.epochs={pretrain_epochs}", "joint.epochs=0"]
    name, config = GRADING_ROWS[row]
    return [f"configs/cpu/{config}", f"name={row}_eyepacs", *grading, *SKIP_PRETRAIN, grader,
            *([] if row == "ori" else [g]), f"joint.epochs={joint_epochs}"]


def evaluate(out: Path, row: str, part: str) -> float | None:
    fmt, root, val_fold, min_fov = SEG_PART if part == "idrid_seg" else PARTS[part]
    target = out / "eval" / row / part
    if (target / "metrics.json").is_file():
        return None
    return sh([*DRCOLLAB, "evaluate", "--checkpoint", str(out / row), "--data", root, "--format", fmt,
               "--split", "train", *(["--val-fold-of", str(out / row)] if val_fold else []), "--out", str(target),
               "--workers", "1", "--overlays", "0", "--cache-dir", os.environ.get("DRCOLLAB_CACHE", "cache"),
               *([] if min_fov is None else ["--min-fov-fraction", min_fov])], out / f"{row}.{part}.log")


def collect(out: Path, row: str, timing: dict) -> dict:
    result: dict = {"row": row, "method": GRADING_ROWS[row][0],
                    "train_min": round(timing["train_s"] / 60, 1) if "train_s" in timing else None,
                    "stage_min": {k: round(v / 60, 1) for k, v in timing.get("stages_s", {}).items()},
                    "eval_min": round(sum(timing.get("evaluate_s", {}).values()) / 60, 1)}
    for part in PARTS:
        m = json.loads((out / "eval" / row / part / "metrics.json").read_text())
        g = m["grading"]
        result[part] = {"n": g["n"], "ungradable": len(m.get("ungradable") or []), "accuracy": g["accuracy"],
                        "kappa": g["kappa"], "referral": g.get("referral"), "normal": g.get("normal")}
    if row in SEG_ROWS:
        result["idrid_seg"] = seg_numbers(out, row)
    return result


def seg_numbers(out: Path, row: str) -> dict | None:
    """AUC-PR per lesion and their mean of ``row``'s G on IDRiD's pixel-labelled fold 0, if evaluated."""
    path = out / "eval" / row / "idrid_seg" / "metrics.json"
    if not path.is_file():
        return None
    seg = json.loads(path.read_text())["segmentation"]
    aps = {k: v["auc_pr"] for k, v in seg.items()}
    return {**aps, "mean": sum(aps.values()) / len(aps)}


def _paper(table: str, dataset: str) -> dict[str, dict]:
    return {e["method"]: e for e in load_paper()["entries"] if e["table"] == table and e["dataset"] == dataset}


def report(data: dict) -> str:
    rows = {r["row"]: r for r in data["rows"]}
    pre = data.get("pretrain_min")
    t1_paper = _paper("Table 1", "EyePACS")
    t1 = [[method, number(t1_paper[method]["grading"]["accuracy"], ".4f"),
           number(t1_paper[method]["grading"]["kappa"], ".4f"), f"`{row}`",
           number(rows[row]["eyepacs"]["accuracy"]), number(rows[row]["eyepacs"]["kappa"]),
           number((rows[row]["eyepacs"]["referral"] or {}).get("auc")), number(rows[row]["train_min"], ".1f")]
          for row, (method, _) in GRADING_ROWS.items() if row in rows]
    text = [markdown(["row", "paper accuracy", "paper kappa", "run", "DR accuracy", "kappa", "referral AUC",
                      "stage 2 (min)"], t1, "lrrl" + "r" * 4)]
    t2_paper = _paper("Table 2", "Messidor")

    def messidor(r: dict) -> list[str]:
        m = r["messidor2"]
        return [number((m[t] or {}).get(k)) for t in ("referral", "normal") for k in ("auc", "accuracy")]

    def paper_cells(e: dict) -> list[str]:
        return [number(e["messidor"][t].get(k), ".3f") for t in ("referral", "normal") for k in ("auc", "accuracy")]

    t2 = []
    for row, (method, _) in GRADING_ROWS.items():
        t2.append([f"{method}, paper (all of Messidor)", MISSING, *paper_cells(t2_paper[method])])
        if row in rows:
            t2.append([f"{method}, ours (Messidor-2 half)", f"`{row}`", *messidor(rows[row])])
    text.append(markdown(["row", "run", "referral AUC", "referral accuracy", "normal AUC", "normal accuracy"], t2,
                         "ll" + "r" * 4))
    eyepacs4, messidor4 = _paper("Table 4", "EyePACS"), _paper("Table 4", "Messidor")
    blank = {"messidor": {"referral": {}, "normal": {}}}
    t4 = [[f"{method} (paper's Table 4)", number(eyepacs4[method]["grading"]["kappa"], ".3f") if method in eyepacs4
           else MISSING, *paper_cells(messidor4.get(method, blank))] for method in {**eyepacs4, **messidor4}]
    t4 += [[f"ours, `{row}` (CPU budget)", number(rows[row]["eyepacs"]["kappa"]), *messidor(rows[row])]
           for row in GRADING_ROWS if row in rows]
    text.append(markdown(["method", "EyePACS kappa", "Messidor referral AUC", "referral accuracy",
                          "Messidor normal AUC", "normal accuracy"], t4, "l" + "r" * 5))
    seg = [[f"`{r}`", what, *(number(v.get(k)) for k in ("MA", "HE", "EX", "SE", "mean"))]
           for r, what, v in [("g384", "CE2: stage 1a alone, the start of every row", data.get("g384_seg") or {}),
                              *((row, f"after {GRADING_ROWS[row][0]} on EyePACS-256", rows[row].get("idrid_seg") or {})
                                for row in SEG_ROWS[1:] if row in rows)] if v]
    if seg:
        text.append(markdown(["G", "what", "MA AUC-PR", "HE AUC-PR", "EX AUC-PR", "SE AUC-PR", "mean AUC-PR"], seg,
                             "ll" + "r" * 5))
    if pre is not None:
        text.append(f"Shared pre-training: G (stage 1a, IDRiD) {pre.get('g384', MISSING)} min, the grader (stage 1b, "
                    f"EyePACS-256) {pre.get('pretrain', MISSING)} min.")
    return "\n\n".join(text) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/eyepacs"))
    parser.add_argument("--rows", nargs="+", choices=list(GRADING_ROWS), default=list(GRADING_ROWS))
    parser.add_argument("--pretrain-epochs", type=int, default=6, help="stage 1b epochs on EyePACS-256")
    parser.add_argument("--joint-epochs", type=int, default=1, help="stage 2 epochs on EyePACS-256")
    results_io.add_arguments(parser, "reproduce_eyepacs")
    args = parser.parse_args()
    if results_io.printed_report(args, report):
        return
    results_io.idrid_root()
    args.out.mkdir(parents=True, exist_ok=True)
    timings_path = args.out / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
    for row in ["g384", "pretrain", *args.rows]:
        run = args.out / row
        if not (run / "model/bundle.json").is_file():
            resume = (run / "checkpoints/last.safetensors").is_file()
            config, *overrides = commands(args.out, row, args.pretrain_epochs, args.joint_epochs)
            cmd = [*DRCOLLAB, "train", "--resume", str(run)] if resume else [
                *DRCOLLAB, "train", "--config", config, "--out", str(run), "runtime.progress=false", *overrides]
            seconds = sh(cmd, args.out / f"{row}.log")
            timings[row] = {"train_s": round(seconds, 1), "stages_s": stage_times(run)}
        elif row not in timings:  # trained outside this script: its stages' logged time
            timings[row] = {"train_s": sum(stage_times(run).values()), "stages_s": stage_times(run)}
        if row in SEG_ROWS:
            seconds = evaluate(args.out, row, "idrid_seg")
            if seconds is not None:
                timings[row].setdefault("evaluate_s", {})["idrid_seg"] = round(seconds, 1)
        if row in GRADING_ROWS:
            for part in PARTS:
                seconds = evaluate(args.out, row, part)
                if seconds is not None:
                    timings[row].setdefault("evaluate_s", {})[part] = round(seconds, 1)
        timings_path.write_text(json.dumps(timings, indent=1))
    done = [r for r in GRADING_ROWS if all((args.out / "eval" / r / p / "metrics.json").is_file() for p in PARTS)]
    evals = [str(args.out / "eval" / r / p) for r in done for p in PARTS]
    sh([*DRCOLLAB, "compare", *evals, "--out", str(args.out / "compare"),
        "--labels", ",".join(f"{r} ({p})" for r in done for p in PARTS)], args.out / "compare.log")
    recorded = results_io.read(args.json) if args.json.is_file() else {"rows": []}
    merged = {r["row"]: r for r in recorded["rows"]} | {r: collect(args.out, r, timings.get(r, {})) for r in done}
    pre = {r: round(timings[r]["train_s"] / 60, 1) for r in ("g384", "pretrain") if "train_s" in timings.get(r, {})}
    data = results_io.write(args.json, [merged[r] for r in GRADING_ROWS if r in merged],
                            pretrain_min=pre or recorded.get("pretrain_min"),
                            g384_seg=seg_numbers(args.out, "g384") or recorded.get("g384_seg"),
                            settings={"pretrain_epochs": args.pretrain_epochs, "joint_epochs": args.joint_epochs})
    text = report(data)
    (args.out / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
