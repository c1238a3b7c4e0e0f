"""Package a trained run as a release checkpoint: its model bundle, config, and validation metrics.

    .venv/bin/python benchmarks/make_release.py --run runs/idrid/pretrain \\
        --evaluation runs/idrid/eval/pretrain --out release/drcollab-idrid-cpu

The release folder is a model bundle (``drcollab predict --checkpoint release/...`` loads it) plus
``config.yaml`` (how it was trained) and ``metrics.json`` (how it did on its validation fold); its
README.md (where it came from, how to re-train it) is written by hand.

``--grader-from BUNDLE`` takes the grader from another bundle instead (e.g. a segmentation-only run's G with the
previous release's stage-1b grader, which in ``ori`` mode does not use G); the bundle then names both sources in
its ``"sources"`` entry, and ``--evaluation`` must be an evaluation of the combined release folder
(``drcollab evaluate --checkpoint OUT ...``, run after a first call without ``--evaluation``).

A grading run whose G was frozen from another bundle (``init.generator``, e.g. ``bench_grade.py``'s
``lesion_stats`` row) already holds both parts; ``--source generator="..."`` then says where that G came from,
and ``--generator-config FILE`` keeps G's own training config beside the run's (``generator_config.yaml``).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from drcollab.models.checkpoint import file_sha256

MAX_BYTES = 50 * 1024 * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="run folder (holds model/ and config.yaml)")
    parser.add_argument("--evaluation", type=Path, default=None, help="drcollab evaluate output of the release")
    parser.add_argument("--grader-from", type=Path, default=None, help="bundle folder to take the grader from")
    parser.add_argument("--source", action="append", default=[], metavar="KIND=TEXT",
                        help="where a part came from, in the bundle's sources (overrides the run's folder)")
    parser.add_argument("--generator-config", type=Path, default=None, help="G's training config, if another run's")
    parser.add_argument("--name", default=None, help="the bundle's name (default: the run's)")
    parser.add_argument("--min-fov-fraction", type=float, default=None,
                        help="the narrowest field of view the release grades, as a fraction of its working size, "
                             "where a measurement chose one (bundle.json's min_fov_fraction; default: 0.75)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    bundle = json.loads((args.run / "model/bundle.json").read_text())
    sources = {kind: str(args.run / "model") for kind in bundle["parts"]}
    if args.grader_from is not None:
        other = json.loads((args.grader_from / "bundle.json").read_text())
        grader = other["parts"]["grader"]
        for suffix in (".safetensors", ".json"):
            shutil.copyfile(args.grader_from / (grader["file"] + suffix), args.out / (grader["file"] + suffix))
        if other["preprocess"]["size"] != bundle["preprocess"]["size"]:
            raise SystemExit(f"the grader's preprocess size {other['preprocess']['size']} differs from the run's "
                             f"{bundle['preprocess']['size']}")
        bundle["parts"]["grader"] = grader
        sources["grader"] = str(args.grader_from)
        if (args.grader_from / "config.yaml").is_file():  # how the grader was trained
            shutil.copyfile(args.grader_from / "config.yaml", args.out / "grader_config.yaml")
    for kind, part in bundle["parts"].items():
        if kind == "grader" and args.grader_from is not None:
            continue
        for suffix in (".safetensors", ".json"):
            shutil.copyfile(args.run / "model" / (part["file"] + suffix), args.out / (part["file"] + suffix))
    for part in bundle["parts"].values():  # checked at every load, also where the run's bundle predates the hashes
        part["sha256"] = file_sha256(args.out / (part["file"] + ".safetensors"))
    for entry in args.source:
        kind, sep, text = entry.partition("=")
        if not sep or kind not in bundle["parts"]:
            raise SystemExit(f"--source {entry!r}: expected KIND=TEXT with KIND one of {sorted(bundle['parts'])}")
        sources[kind] = text
    bundle["sources"] = sources
    if args.generator_config is not None:
        shutil.copyfile(args.generator_config, args.out / "generator_config.yaml")
    if args.name:
        bundle["name"] = args.name
    if args.min_fov_fraction is not None:
        bundle["min_fov_fraction"] = args.min_fov_fraction
    (args.out / "bundle.json").write_text(json.dumps(bundle, indent=2))
    shutil.copyfile(args.run / "config.yaml", args.out / "config.yaml")
    if args.evaluation is None:
        print(f"release {args.out} written without metrics.json: evaluate it, then re-run with --evaluation")
        return
    metrics = json.loads((args.evaluation / "metrics.json").read_text())
    if Path(metrics.get("checkpoint", "")).resolve() == args.out.resolve():  # named as given, not by this machine
        metrics["checkpoint"] = str(args.out)
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    size = sum(p.stat().st_size for p in args.out.iterdir() if p.is_file())
    if size > MAX_BYTES:
        raise SystemExit(f"release is {size / 2**20:.1f} MiB, over the {MAX_BYTES / 2**20:.0f} MiB limit")
    print(f"release {args.out}: {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
