"""How fast is ``drcollab predict`` with the released model? Seconds per 4288x2848 photo, stage by stage.

Three columns, measured in one run on one machine:

- **old default**: the code of ``--old-src`` (a checkout of the release before the fast path) for the command-line
  rows; for the stages, today's code set up as that code ran: fp32, one G tile per call, PNG zlib level 6.
- **new default**: what ``drcollab predict`` does now: the setting the machine's measured choice picks
  (``inference/autotune.py``), G's tiles stacked 12 per call, PNG level 1, outputs written beside the next forward.
- **floor**: G's and the grader's FLOPs over this CPU's best measured rate for their layer kinds
  (``benchmarks/results/bench_floor.json``, ``benchmarks/bench_floor.py``), when that file is there.

Stage rows are medians of ``--runs`` timed calls after a warm-up, on IDRiD_01.jpg of the segmentation set, each stage
alone. The command-line rows run ``drcollab predict`` in a subprocess on distinct photos of the grading set (4288x2848;
``predict`` skips a second link to the same file): *cold start* is the whole command on one photo (imports, model
load and the remembered setting included), the median of ``--runs`` commands; *warm* is (T(N photos) - T(1 photo)) /
(N - 1), T(N) from one command, N = ``--photos`` for the new default and ``--old-photos`` for the old one and for
``--onnx`` (``predict --engine onnx`` with its graph already built and cached).

    git worktree add ../drcollab-old 9ab906b
    DRCOLLAB_IDRID=../shared/data/IDRiD .venv/bin/python benchmarks/bench_predict_speed.py \
        --old-src ../drcollab-old/src --onnx
    .venv/bin/python benchmarks/bench_predict_speed.py --report
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import results_io  # benchmarks/ is the script's folder
import torch
from bench_predict import median_seconds

from drcollab.data.io import read_image
from drcollab.files import cache_home
from drcollab.inference import outputs
from drcollab.inference.autotune import REFERENCE, choose_setting, make_predictor
from drcollab.inference.bundle import bundle_fingerprint, load_bundle
from drcollab.inference.gradability import GradabilityConfig, check_gradable
from drcollab.models import tiling
from drcollab.models.mask_path import grader_inputs

SEG_IMAGES = "A. Segmentation/1. Original Images/a. Training Set"
GRADE_IMAGES = "B. Disease Grading/1. Original Images/a. Training Set"  # 413 distinct 4288x2848 photos


def stages(bundle_dir: Path, photo: Path, runs: int, old: bool) -> dict[str, float]:
    """Seconds of each stage of one photo, set up as the old or the new default."""
    bundle = load_bundle(bundle_dir)
    device = torch.device("cpu")
    setting = REFERENCE if old else choose_setting(bundle, bundle_fingerprint(bundle), device).setting
    tiling.TILES_PER_CALL, outputs.PNG_LEVEL = (1, 6) if old else (12, 1)
    predictor = make_predictor(bundle, device, setting)
    image = read_image(photo)
    pre = predictor.preprocess(image)
    batch = torch.from_numpy(pre.image).permute(2, 0, 1)[None].float() / 127.5 - 1  # (1, 3, S, S)
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if predictor.amp else torch.autocast("cpu", enabled=False)
    if predictor.channels_last:
        batch = batch.contiguous(memory_format=torch.channels_last)
    g, c, k = bundle.generator, bundle.grader, predictor.grader_factor

    def run_g():
        with torch.inference_mode(), ctx:
            return grader_inputs(g, batch, k, predictor.tile, predictor.overlap, True)

    inputs = run_g()
    small = torch.nn.functional.avg_pool2d(batch, k)

    def run_grader():
        with torch.inference_mode(), ctx:
            return c(small, inputs.masks, inputs.stats)

    pred = predictor.predict_preprocessed([pre])[0]
    quality = {"measures": {}, "check": {}}
    out = Path(tempfile.mkdtemp())
    row = {
        "decode": median_seconds(lambda: read_image(photo), runs),
        "gradability": median_seconds(lambda: check_gradable(image, GradabilityConfig(), pre.geometry.size), runs),
        "preprocess": median_seconds(lambda: predictor.preprocess(image), runs),
        "G (+ lesion statistics)": median_seconds(run_g, runs),
        "grader": median_seconds(run_grader, runs),
        "outputs, full-resolution maps": median_seconds(
            lambda: outputs.write_image_outputs(out, "x", photo, None, image, pred, "m", quality, "full"), runs),
        "outputs, model-resolution maps": median_seconds(
            lambda: outputs.write_image_outputs(out, "x", photo, None, image, pred, "m", quality, "model"), runs),
    }
    row["setting"] = setting.describe(predictor.tile)
    return row


def predict_seconds(src: Path, bundle_dir: Path, photos: list[Path], maps: str | None, runs: int,
                    extra: tuple[str, ...] = ()) -> float:
    """Median wall seconds of ``drcollab predict`` (code under ``src``) on ``photos`` into a fresh folder.

    The photos must be distinct files: ``predict`` skips a file listed twice (a second link to the same photo)."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "in"
            folder.mkdir()
            for p in photos:
                (folder / p.name).symlink_to(p.resolve())
            cmd = [sys.executable, "-m", "drcollab.cli", "predict", str(folder), "--checkpoint", str(bundle_dir),
                   "--out", str(Path(tmp) / "out"), "--no-progress", *extra] + (["--maps", maps] if maps else [])
            start = time.perf_counter()
            done = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
            if f"predicted {len(photos)} images ({len(photos)} now" not in done.stdout + done.stderr:
                raise RuntimeError(f"predict did not predict all {len(photos)} photos:\n{done.stdout}{done.stderr}")
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def command_rows(src: Path, bundle_dir: Path, pool: list[Path], n: int, maps: str | None, runs: int,
                 extra: tuple[str, ...] = ()) -> dict:
    if n > len(pool):
        raise SystemExit(f"--photos {n}: the pool holds {len(pool)} distinct photos")
    photos = pool[:n]
    one = predict_seconds(src, bundle_dir, photos[:1], maps, runs, extra)
    many = predict_seconds(src, bundle_dir, photos, maps, max(1, runs // 5), extra)
    warm = (many - one) / (n - 1)
    return {"cold start, 1 photo (s)": one, "warm s/photo": warm, "warm photos/s": 1 / warm, "photos": n}


def floors() -> dict[str, dict[str, float]] | None:
    """Each model stage's floor in seconds per photo, fp32 and bf16 (FLOPs by kind over the kinds' best rates, plus
    the other layers at their own rate), from ``benchmarks/results/bench_floor.json`` when it is there."""
    path = results_io.RESULTS / "bench_floor.json"
    if not path.is_file():
        return None
    work = results_io.read(path)["workloads"]
    return {stage: {p: work[name]["floor_s"][p]["by_kind"] + work[name]["floor_s"][p]["other"]
                    for p in ("fp32", "bf16")}
            for stage, name in (("G (+ lesion statistics)", "G tiled"), ("grader", "grader")) if name in work}


def report(data: dict) -> str:
    stage_names = [k for k in data["rows"]["new"]["stages"] if k != "setting"]
    floor = data.get("floors") or {}
    head = ["stage", "old default (s)", "new default (s)", "floor fp32 (s)", "floor bf16 (s)"]
    lines = [[name, results_io.number(data["rows"]["old"]["stages"].get(name)),
              results_io.number(data["rows"]["new"]["stages"][name]),
              results_io.number(floor.get(name, {}).get("fp32")), results_io.number(floor.get(name, {}).get("bf16"))]
             for name in stage_names]
    text = results_io.markdown(head, lines, "lrrrr")
    cmd_head = ["`drcollab predict`", "maps", "cold start, 1 photo (s)", "warm s/photo", "warm photos/s", "photos"]
    rows = []
    for label, key in (("old default", "old"), ("new default", "new"), ("new default", "new_model"),
                       ("`--engine onnx` (graph built)", "onnx_model")):
        r = data["rows"].get(key, {}).get("command")
        if r:
            maps = "model" if key.endswith("_model") else "full"
            rows.append([label, maps, results_io.number(r["cold start, 1 photo (s)"], ".1f"),
                         results_io.number(r["warm s/photo"], ".2f"), results_io.number(r["warm photos/s"], ".2f"),
                         str(r["photos"])])
    text += "\n" + results_io.markdown(cmd_head, rows, "llrrrr")
    new = data["rows"]["new"]["stages"]
    text += f"\nNew default setting: {new['setting']}. {data['machine']}.\n"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=Path("release/drcollab-idrid-cpu"))
    parser.add_argument("--idrid", type=Path, default=Path(os.environ.get("DRCOLLAB_IDRID", "../shared/data/IDRiD")))
    parser.add_argument("--old-src", type=Path, help="src/ of a checkout of the code before the fast path")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--photos", type=int, default=100)
    parser.add_argument("--old-photos", type=int, default=10, help="photos of the old default's and ONNX's warm rows")
    parser.add_argument("--onnx", action="store_true", help="also time `--engine onnx` (its graph built beforehand)")
    results_io.add_arguments(parser, "bench_predict_speed")
    args = parser.parse_args()
    if args.report:
        print(report(results_io.read(args.json)))
        return
    photo = sorted((args.idrid / SEG_IMAGES).glob("*.jpg"))[0]
    pool = sorted((args.idrid / GRADE_IMAGES).glob("*.jpg"))
    new_src = Path(__file__).resolve().parents[1] / "src"
    rows = {"old": {"stages": stages(args.bundle, photo, args.runs, old=True)},
            "new": {"stages": stages(args.bundle, photo, args.runs, old=False)}}
    print(f"stages done (setting cache: {cache_home()})", flush=True)
    rows["new"]["command"] = command_rows(new_src, args.bundle, pool, args.photos, None, args.runs)
    rows["new_model"] = {"command": command_rows(new_src, args.bundle, pool, args.photos, "model", args.runs)}
    if args.onnx:
        rows["onnx_model"] = {"command": command_rows(new_src, args.bundle, pool, args.old_photos, "model", args.runs,
                                                      ("--engine", "onnx"))}
    if args.old_src:
        rows["old"]["command"] = command_rows(args.old_src, args.bundle, pool, args.old_photos, None, args.runs)
    results_io.write(args.json, rows, floors=floors(), photo=str(photo.name))
    print(report(results_io.read(args.json)))


if __name__ == "__main__":
    main()
