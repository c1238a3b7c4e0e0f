"""The grader trained on one, two or three graded sources, scored on each source's validation part.

Every row is stage 1b alone (the plain grader of ``configs/cpu/ori.yaml``: focal loss on DR and DME, resnet18 from
scratch, 384 px, G's and the joint stage's epochs at 0) with ``data.image`` set to the row's sources and the same
budget of training draws for every row: ``--draws`` images (default 13,200, 40 epochs of IDRiD's 330 training
images), so ``grade_pretrain.epochs`` is the draws over the row's training images per epoch (an epoch is as many
draws as there are training images, ``docs/method.md`` "Several graded sources"). IDRiD keeps a share of 0.5 in
every row that adds a source; the others split the rest. ``all_3x`` (run with ``--rows``) is ``all`` at three times
the draws. ``all_lesion_stats`` (also with ``--rows``) is ``all`` with the release's grader recipe: G's lesion
statistics beside the pooled features (``bench_grade.py``'s ``lesion_stats`` row), from the release's G at 1152 px;
G's one pass over the ~4,100 photos is cached (``GraderInputCache``) and counted in its training minutes (and
reported on its own: a cache that already holds a photo costs a read);
``idrid_messidor2_lesion_stats`` (also with ``--rows``) is ``idrid_messidor2`` with the same recipe.
``idrid_lesion_stats`` (also with ``--rows``) trains nothing: it scores the grader of ``bench_grade.py``'s
``lesion_stats`` row (IDRiD alone, the same recipe at 20 epochs; ``runs/bench_grade/lesion_stats``, run that first)
on the same parts.

Each row's model is scored by ``drcollab evaluate`` on three validation parts, the folds the ``all`` row held out
(each source split by its own patient-grouped folds, fold 0 of 5, seed 0; ``--val-fold-of``): IDRiD fold 0 (83
photos), a Messidor-2 part and an EyePACS-256 part. A row that did not train on a source never saw any of its
photos. EyePACS-256's photos are 256 px across, under the 0.75 x 384 = 288 px the gradability rule asks of a 384-px
model, so they are scored with a minimum field of view of 0.6 x 384 = 230 px (``--min-fov-fraction`` 0.6 of a 384-px
model's size, 0.2 of a model whose G works at 1152 px; the photos are up-sampled to the working size, as in
training); Messidor-2's with 288 px, the 384-px model's own rule, for every row. Referral is Table 2's
(``grading.referral`` of ``metrics.json``): DR >= 2 or referable DME (risk 2, which is what Messidor-2's adjudicated
DME means), scored by P(DR >= 2 or DME risk 2), flagged at P >= 0.5; normal is DR 0.

    DRCOLLAB_IDRID=../shared/data/IDRiD .venv/bin/python benchmarks/bench_sources.py --out runs/bench_sources
    .venv/bin/python benchmarks/bench_sources.py --out runs/bench_sources --report

The ``all`` row runs first (the others are scored on its folds). Finished rows are reused and an interrupted one
resumes; results are merged into ``benchmarks/results/bench_sources.json`` (committed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import rowbench
import yaml
from bench_grade import GENERATOR  # the lesion_stats row's G: the release's
from reproduce_idrid import DRCOLLAB, sh

from drcollab.data.folds import split_records
from drcollab.data.sources import DatasetSpec, read_records
from drcollab.inference.bundle import find_bundle

STAGE_1B = ["seg_pretrain.epochs=0", "joint.epochs=0", "grader.dme=true", "runtime.validate_every=100000"]
SOURCES = {"idrid": ("idrid-grade", "DRCOLLAB_IDRID", "../shared/data/IDRiD"),
           "messidor2": ("messidor2", "DRCOLLAB_MESSIDOR2", "../shared/data/Messidor-2"),
           "eyepacs": ("eyepacs", "DRCOLLAB_EYEPACS", "../shared/data/EyePACS-256")}
ROWS: dict[str, tuple[str, dict[str, float | None]]] = {
    "all": ("IDRiD + Messidor-2 + EyePACS-256 (shares 0.5 / 0.3 / 0.2)",
            {"idrid": 0.5, "messidor2": 0.3, "eyepacs": 0.2}),
    "idrid": ("IDRiD alone", {"idrid": None}),
    "idrid_messidor2": ("IDRiD + Messidor-2 (shares 0.5 / 0.5)", {"idrid": 0.5, "messidor2": 0.5}),
    "idrid_eyepacs": ("IDRiD + EyePACS-256 (shares 0.5 / 0.5)", {"idrid": 0.5, "eyepacs": 0.5}),
    "all_3x": ("all three, 3 x the draws", {"idrid": 0.5, "messidor2": 0.3, "eyepacs": 0.2}),
    "all_lesion_stats": ("all three, the grader with G's lesion statistics (the release's G at 1152 px)",
                         {"idrid": 0.5, "messidor2": 0.3, "eyepacs": 0.2}),
    "idrid_messidor2_lesion_stats": ("IDRiD + Messidor-2 (0.5 / 0.5), G's lesion statistics",
                                     {"idrid": 0.5, "messidor2": 0.5}),
    "idrid_lesion_stats": ("IDRiD alone, G's lesion statistics (bench_grade.py's lesion_stats row)", {"idrid": None}),
}
DRAWS_FACTOR = {"all_3x": 3}
LESION_STATS = ["grader.lesion_stats=true", f"init.generator={GENERATOR}", "data.seg_size=1152"]
ROW_SETTINGS = {"all_lesion_stats": LESION_STATS, "idrid_messidor2_lesion_stats": LESION_STATS}
TRAINED = {"idrid_lesion_stats": Path("runs/bench_grade/lesion_stats")}  # scored, not trained
OPTIONAL = {*DRAWS_FACTOR, *ROW_SETTINGS, *TRAINED}  # rows run only when asked for by --rows
# scored part -> (evaluate's --format, --split, the narrowest field of view scored in pixels: None = the model's own
# rule, 0.75 of its working size). 288 px is that rule for a 384-px grader, kept for a model whose G works at 1152 px
# so that every row scores the same photos.
PARTS = {"idrid": ("idrid", "train", None), "messidor2": ("messidor2", "train", 288.0),
         "eyepacs": ("eyepacs", "train", 230.4)}
FOLD_REFERENCE = "all"


def root(source: str) -> str:
    _, env, default = SOURCES[source]
    return os.environ.get(env, default)


def train_images(source: str) -> int:
    """The training part of ``source`` (fold 0 of 5 held out, seed 0, as ``configs/cpu/base.yaml`` splits it)."""
    fmt = SOURCES[source][0]
    train, _ = split_records(read_records(DatasetSpec(format=fmt, root=root(source))), 5, 0, 0)
    return len(train)


def overrides(row: str, seed: int, draws: int) -> list[str]:
    shares = ROWS[row][1]
    draws *= DRAWS_FACTOR.get(row, 1)
    entries = [{"format": SOURCES[s][0], "root": root(s), **({} if share is None else {"share": share})}
               for s, share in shares.items()]
    epochs = max(1, round(draws / sum(train_images(s) for s in shares)))
    return [f"seed={seed}", *STAGE_1B, f"grade_pretrain.epochs={epochs}", "data.image=" + json.dumps(entries),
            *ROW_SETTINGS.get(row, [])]


def checkpoint(out: Path, name: str) -> Path:
    """The bundle a row's run scores: its run folder's, or the bundle :data:`TRAINED` names for it."""
    return TRAINED.get(name, out / name)


def working_size(run: Path) -> int:
    """The size the gradability rule reads: G's preprocessing size where the bundle has one, else the grader's."""
    bundle = json.loads((find_bundle(run) / "bundle.json").read_text())
    return int((bundle.get("generator_preprocess") or bundle["preprocess"])["size"])


def evaluate(out: Path, name: str, part: str) -> Path:
    fmt, split, min_fov_px = PARTS[part]
    run, target = checkpoint(out, name), out / "eval" / name / part
    min_fov = None if min_fov_px is None else round(min_fov_px / working_size(run), 4)
    if not (target / "metrics.json").is_file():
        sh([*DRCOLLAB, "evaluate", "--checkpoint", str(run), "--data", root(part), "--format", fmt, "--split", split,
            "--val-fold-of", str(out / FOLD_REFERENCE), "--out", str(target), "--workers", "1", "--overlays", "0",
            "--cache-dir", os.environ.get("DRCOLLAB_CACHE", "cache"),
            *([] if min_fov is None else ["--min-fov-fraction", str(min_fov)])], out / f"{name}.{part}.log")
    return target / "metrics.json"


def run_row(out: Path, row: str, seed: int, draws: int, extra: list[str]) -> dict:
    name = rowbench.run_name(row, seed)
    run = out / name
    if row not in TRAINED and not (run / "model/bundle.json").is_file():
        resume = (run / "checkpoints/last.safetensors").is_file()
        cmd = [*DRCOLLAB, "train", "--resume", str(run)] if resume else [
            *DRCOLLAB, "train", "--config", "configs/cpu/ori.yaml", "--out", str(run), "runtime.progress=false",
            *overrides(row, seed, draws), *extra]
        sh(cmd, out / f"{name}.log")
    for part in PARTS:
        evaluate(out, name, part)
    return collect(out, name, row)


def _part(m: dict) -> dict:
    grading, dme = m.get("grading") or {}, m.get("dme") or {}
    normal, referral = grading.get("normal") or {}, grading.get("referral") or {}
    return {"n": grading.get("n"), "ungradable": len(m.get("ungradable") or []),
            "accuracy": grading.get("accuracy"), "kappa": grading.get("kappa"),
            "dme_accuracy": dme.get("accuracy_with_partial", dme.get("accuracy")),
            "referable_auc": referral.get("auc"), "referable_sensitivity": referral.get("sensitivity"),
            "referable_specificity": referral.get("specificity"), "normal_auc": normal.get("auc"),
            "normal_accuracy": normal.get("accuracy")}


def collect(out: Path, name: str, row: str) -> dict:
    result = {"row": row, "run": name, "description": ROWS[row][0]}
    if row not in TRAINED:
        result.update(train_min=rowbench.stage_minutes(out / name, "grade_pretrain"),
                      precompute_min=rowbench.precompute_minutes(out / name),
                      draws=rowbench.stage_steps(out / name, "grade_pretrain") * batch_size(out / name))
    for part in PARTS:
        m = json.loads((out / "eval" / name / part / "metrics.json").read_text())
        result.update({f"{part}/{k}": v for k, v in _part(m).items()})
    return result


def batch_size(run: Path) -> int:
    """Stage 1b's global batch, read from the run's config as plain YAML (a run's config outlives config fields)."""
    return int(yaml.safe_load((run / "config.yaml").read_text())["grade_pretrain"]["batch_size"])


def numbers(row: dict) -> list[str]:
    return [k for k in row if "/" in k or k in ("train_min", "precompute_min", "draws")]


COLUMNS = [("idrid/accuracy", "IDRiD DR acc."), ("idrid/kappa", "IDRiD kappa"),
           ("idrid/dme_accuracy", "IDRiD DME acc."),
           ("idrid/referable_auc", "IDRiD referral AUC"),
           ("messidor2/accuracy", "Messidor-2 DR acc."), ("messidor2/kappa", "Messidor-2 kappa"),
           ("messidor2/dme_accuracy", "Messidor-2 DME acc."), ("messidor2/referable_auc", "Messidor-2 referral AUC"),
           ("messidor2/referable_sensitivity", "sens."), ("messidor2/referable_specificity", "spec."),
           ("messidor2/normal_auc", "Messidor-2 normal AUC"),
           ("eyepacs/accuracy", "EyePACS-256 DR acc."), ("eyepacs/kappa", "EyePACS-256 kappa"),
           ("eyepacs/referable_auc", "EyePACS-256 referral AUC"), ("train_min", "training (min)"),
           ("precompute_min", "of which G's pass (min)")]


def table(results: list[dict]) -> str:
    head = ["row", "sources"] + [c[1] for c in COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * len(COLUMNS)]
    for r in results:
        cells = ["–" if r.get(k) is None else (f"{r[k]:.1f}" if k.endswith("_min") else f"{r[k]:.3f}")
                 for k, _ in COLUMNS]
        lines.append(f"| `{r['run']}` | {r['description']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def report(recorded: list[dict] | dict) -> str:
    results = rowbench.rows_of(recorded)
    text = table(results)
    if any(r["run"] != r["row"] for r in results):
        text += "\nMedians over seeds:\n\n" + table(rowbench.medians(results, numbers))
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    rowbench.add_arguments(parser, ROWS, "runs/bench_sources", Path(__file__).parent / "results/bench_sources.json")
    parser.add_argument("--draws", type=int, default=13_200, help="training images drawn per row (its budget)")
    args = parser.parse_args()
    if args.report:
        print(report(json.loads(args.recorded.read_text())))
        return
    if "DRCOLLAB_IDRID" not in os.environ:
        sys.exit("set DRCOLLAB_IDRID to the IDRiD root (the folder holding 'A. Segmentation')")
    args.out.mkdir(parents=True, exist_ok=True)
    rows = args.rows or [r for r in ROWS if r not in OPTIONAL]
    if FOLD_REFERENCE not in rows and not (args.out / FOLD_REFERENCE / "config.yaml").is_file():
        sys.exit(f"the {FOLD_REFERENCE!r} row runs first: the others are scored on its validation folds")
    results = []
    for row in sorted(rows, key=lambda r: r != FOLD_REFERENCE):
        for seed in args.seeds:
            results.append(run_row(args.out, row, seed, args.draws, args.set))
            merged = rowbench.merge_recorded(args.recorded, results)
    text = report(merged)
    (args.out / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
