"""Reproduce the ablation rows of Tables 1 and 3 on a validation fold of the IDRiD training split.

Runs the ``configs/cpu/`` (or ``configs/paper/``) rows and evaluates each on the fold its run held
out (``drcollab evaluate --val-fold-of``), then merges them (``drcollab compare``). To spend the
budget on what differs between rows, the rows share their pre-training: one run trains stages 1a
and 1b (``pretrain``: its grader, and its G at the grader's 384 px, start every Table 1 row), and the
Table 1 rows start stage 2 from it with ``init.generator`` / ``init.grader``; CE1 and CE2 pre-train their own G
at its own 1152 px (``configs/cpu/ce1.yaml``, ``ce2.yaml``), because stage 2 does not yet run G at another size
than the grader's. Every run is an ordinary ``drcollab train`` command, printed before it starts.

    DRCOLLAB_IDRID=../shared/data/IDRiD .venv/bin/python benchmarks/reproduce_idrid.py --family cpu --out runs/idrid

Writes ``OUT/<row>/`` (run folders), ``OUT/eval/<row>/`` (reports), ``OUT/compare/`` (tables and PR
curves) and ``OUT/timings.json`` (wall time of every run and stage).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from drcollab.config import read_yaml_tree

DRCOLLAB = [sys.executable, "-m", "drcollab.cli"]
SKIP_PRETRAIN = ["seg_pretrain.epochs=0", "grade_pretrain.epochs=0"]
# Issue 12's remedies one at a time (configs/cpu/lesion_semi_new.yaml has them together).
# The presence table of configs/cpu/lesion_semi_new.yaml (ICDR/IDRiD's implications and MA, HE present at grade 2-4),
# read from that file so the table lives in one place.
NEW_SEMI = Path(__file__).resolve().parent.parent / "configs/cpu/lesion_semi_new.yaml"
PRESENCE_PRIOR = "data.presence.dr=" + json.dumps(read_yaml_tree(NEW_SEMI)["data"]["presence"]["dr"])
REMEDIES = {
    "presence": ["joint.presence_weight=1.0", PRESENCE_PRIOR],
    "zero_absent": ["joint.zero_absent=true"],
    "refined": ["joint.pseudo_mask=refined", "joint.pseudo_gate=relative"],
    "adv_matched": ["joint.adversarial=true", "joint.disc_match=grade", "joint.disc_min_grade=3"],
    "alpha_masks": ["joint.alpha_mask_weight=1.0"],
}

RELEASE = Path(__file__).resolve().parent.parent / "release/drcollab-idrid-cpu"
RELEASE_INIT = [f"init.generator={RELEASE / 'generator'}", f"init.grader={RELEASE / 'grader'}"]


def rows(out: Path) -> dict[str, tuple[str, list[str]]]:
    """Row -> (config file, overrides). ``pretrain`` first: the others start from its networks."""
    pre = out / "pretrain/models"
    init = [f"init.generator={pre / 'seg_pretrain/generator'}", f"init.grader={pre / 'grade_pretrain/grader'}"]
    return {
        "pretrain": ("lesion_pretrained.yaml", ["name=pretrain", "joint.epochs=0"]),
        "ce1": ("ce1.yaml", []),
        # Table 3's CE2: G at its own 1152 px (ce2.yaml); pretrain's G, at the grader's 384 px, starts stage 2.
        "ce2": ("ce2.yaml", []),
        "ori": ("ori.yaml", [*SKIP_PRETRAIN, f"init.grader={pre / 'grade_pretrain/grader'}"]),
        "lesion_pretrained": ("lesion_pretrained.yaml", [*SKIP_PRETRAIN, *init]),
        "lesion_semi": ("lesion_semi.yaml", [*SKIP_PRETRAIN, *init]),
        "lesion_semi_adv": ("lesion_semi_adv.yaml", [*SKIP_PRETRAIN, *init]),
        # Investigation, not a paper row (run with --rows): Semi with the attention maps gated by G's own masks.
        "lesion_semi_gated": ("lesion_semi.yaml", [*SKIP_PRETRAIN, *init, "name=lesion_semi_gated",
                                                   "joint.pseudo_mask=gated"]),
        # Issue 12's remedies together, then each alone on the paper's Semi (run with --rows).
        "lesion_semi_new": ("lesion_semi_new.yaml", [*SKIP_PRETRAIN, *init]),
        "lesion_semi_adv_new": ("lesion_semi_adv_new.yaml", [*SKIP_PRETRAIN, *init]),
        # New Semi with the attention model started as a copy of G's masks (grader.attention_init: masks), so the
        # grader begins stage 2 reading G's masks as Lesion (Pretrained) does, not a random alpha.
        "lesion_semi_new_attmasks": ("lesion_semi_new.yaml", [*SKIP_PRETRAIN, *init, "name=lesion_semi_new_attmasks",
                                                              "grader.attention_init=masks"]),
        # New Semi+Adv with a D that sees the masks alone (discriminator.sees_image: false), not the images.
        "lesion_semi_adv_new_maskd": ("lesion_semi_adv_new.yaml", [*SKIP_PRETRAIN, *init,
                                                                    "name=lesion_semi_adv_new_maskd",
                                                                    "discriminator.sees_image=false"]),
        # Controls: new Semi with no pseudo mask, only the labels' zero targets (what the labels alone give G), and
        # with no loss on X^I for G at all (G goes on with X^P alone: what more training gives it).
        "xp_only": ("lesion_semi_new.yaml", [*SKIP_PRETRAIN, *init, "name=xp_only", "joint.semi=false"]),
        "lesion_semi_labels": ("lesion_semi_new.yaml", [*SKIP_PRETRAIN, *init, "name=lesion_semi_labels",
                                                        "joint.pseudo_mask=labels"]),
        **{f"lesion_semi_{name}": ("lesion_semi.yaml", [*SKIP_PRETRAIN, *init, f"name=lesion_semi_{name}", *values])
           for name, values in REMEDIES.items()},
        # G at its own 1152 px in stage 2 (training/two_size.py), starting from the release's G and grader (run
        # with --rows): CE2 is then the release's G, and its grader the lesion-statistics grader of issue 13.
        "lesion_semi_new_1152": ("lesion_semi_new_1152.yaml", [*SKIP_PRETRAIN, *RELEASE_INIT]),
        "lesion_semi_adv_new_1152": ("lesion_semi_adv_new_1152.yaml", [*SKIP_PRETRAIN, *RELEASE_INIT]),
        # Control: the same stage 2 without pseudo masks (G goes on with X^P crops alone), so the pseudo masks'
        # share of what G gains or loses is visible.
        "xp_only_1152": ("lesion_semi_new_1152.yaml", [*SKIP_PRETRAIN, *RELEASE_INIT, "name=xp_only_1152",
                                                      "joint.semi=false"]),
    }


PAPER_ROWS = ["pretrain", "ce1", "ce2", "ori", "lesion_pretrained", "lesion_semi", "lesion_semi_adv"]


def sh(cmd: list[str], log: Path) -> float:
    print("$ " + " ".join(shlex.quote(str(c)) for c in cmd), flush=True)
    start = time.perf_counter()
    with log.open("a") as f:
        subprocess.run(cmd, check=True, stdout=f, stderr=subprocess.STDOUT)
    return time.perf_counter() - start


def stage_times(run: Path) -> dict[str, float]:
    """Seconds between the first and last log line of each stage (metrics.csv)."""
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    with (run / "metrics.csv").open() as f:
        for r in csv.DictReader(f):
            first.setdefault(r["stage"], float(r["time"]))
            last[r["stage"]] = float(r["time"])
    return {s: round(last[s] - first[s], 1) for s in first}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=["cpu", "paper"], default="cpu")
    parser.add_argument("--out", type=Path, default=Path("runs/idrid"))
    parser.add_argument("--rows", nargs="+", default=None, choices=list(rows(Path("."))),
                        help="rows to run (default: the paper's rows; lesion_semi_gated is an investigation)")
    parser.add_argument("--set", nargs="*", default=[], help="extra key=value overrides for every run")
    args = parser.parse_args()
    if "DRCOLLAB_IDRID" not in os.environ:
        sys.exit("set DRCOLLAB_IDRID to the IDRiD root (the folder holding 'A. Segmentation')")
    idrid = os.environ["DRCOLLAB_IDRID"]
    args.out.mkdir(parents=True, exist_ok=True)
    timings_path = args.out / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
    table = rows(args.out)
    for row in args.rows or PAPER_ROWS:
        config, overrides = table[row]
        run = args.out / row
        log = args.out / f"{row}.log"
        if not (run / "model/bundle.json").is_file():
            resume = (run / "checkpoints/last.safetensors").is_file()
            cmd = [*DRCOLLAB, "train", "--resume", str(run)] if resume else [
                *DRCOLLAB, "train", "--config", f"configs/{args.family}/{config}", "--out", str(run),
                "runtime.progress=false", *overrides, *args.set]
            seconds = sh(cmd, log)
            timings[row] = {"train_s": round(seconds, 1), "stages_s": stage_times(run)}
        evaluation = args.out / "eval" / row
        if not (evaluation / "metrics.json").is_file():
            seconds = sh([*DRCOLLAB, "evaluate", "--checkpoint", str(run), "--data", idrid, "--split", "train",
                          "--val-fold-of", str(run), "--out", str(evaluation), "--workers", "1",
                          "--cache-dir", os.environ.get("DRCOLLAB_CACHE", "cache")], log)
            timings.setdefault(row, {})["evaluate_s"] = round(seconds, 1)
        timings_path.write_text(json.dumps(timings, indent=1))
    done = [r for r in table if (args.out / "eval" / r / "metrics.json").is_file()]
    sh([*DRCOLLAB, "compare", *[str(args.out / "eval" / r) for r in done], "--out", str(args.out / "compare"),
        "--labels", ",".join(done)], args.out / "compare.log")
    print(f"tables: {args.out / 'compare/compare.md'}; timings: {timings_path}")


if __name__ == "__main__":
    main()
