"""The ``drcollab`` command line: thin subcommands over library functions."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import typer

from drcollab.config import OutsideFov, Tta
from drcollab.data.header import ImageLimits
from drcollab.service.admission import DEFAULT_MAX_QUEUE, DEFAULT_MAX_WAIT_S

if TYPE_CHECKING:
    from drcollab.evaluation.selection import EvalSet

DataFormat = Literal["auto", "idrid", "idrid-seg", "idrid-grade", "eyepacs", "messidor", "messidor2", "generic"]
PLAIN_HELP = ("Run fp32 in the bundle's tiles (the reference path) instead of the fastest setting whose answers "
              "match it, measured once per machine (torch engine).")
TTA_HELP = ("Test-time flips averaged: none, hflip (+ the mirror image) or flips (+ vertical and both) "
            "(default: the bundle's tta, else none).")

app = typer.Typer(
    name="drcollab",
    help="Collaborative semi-supervised lesion segmentation and DR grading (Zhou et al., CVPR 2019).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def main() -> None:
    """Collaborative semi-supervised lesion segmentation and DR grading."""


@app.command()
def version() -> None:
    """Print the installed drcollab version."""
    from drcollab.constants import VERSION as __version__

    typer.echo(__version__)


@app.command()
def synth(
    out: Path = typer.Option(..., "--out", help="Dataset folder to create (generic layout)."),
    n: int = typer.Option(200, "--n", min=1, help="Number of images."),
    size: int = typer.Option(512, "--size", min=64, max=8192, help="Image side in pixels."),
    seed: int = typer.Option(0, "--seed", min=0, help="Set seed; image i depends only on (seed, i)."),
    pixel_fraction: float = typer.Option(1.0, "--pixel-fraction", min=0.0, max=1.0, help="Share with masks."),
    label_noise: float = typer.Option(0.05, "--label-noise", min=0.0, max=1.0, help="Share of grades one off."),
    contact_sheet: Path | None = typer.Option(None, "--contact-sheet", help="Also save a PNG of the first 24."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace labels.csv, images/ and masks/ in --out."),
) -> None:
    """Write a procedural synthetic fundus dataset (no download needed)."""
    from drcollab.data.synthetic import grade_histogram, synthetic_contact_sheet, write_synthetic
    from drcollab.errors import DataError
    from drcollab.viz import save_png

    try:
        root = write_synthetic(out, n, size, seed, pixel_fraction, label_noise, overwrite=overwrite)
    except DataError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from err
    hist = grade_histogram(root)
    masked = len(list((root / "masks" / "MA").glob("*.png")))
    typer.echo(f"wrote {n} images ({masked} with masks) to {root}")
    typer.echo("grades: " + ", ".join(f"{g}: {hist.get(g, 0)}" for g in range(5)))
    if contact_sheet is not None:
        sheet = synthetic_contact_sheet(n, size, seed, pixel_fraction, label_noise)
        typer.echo(f"contact sheet: {save_png(sheet, contact_sheet)}")


@app.command()
def train(
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML training config (see configs/)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Run folder (default: runs/<name>)."),
    resume: Path | None = typer.Option(None, "--resume", help="Continue the run in this folder (key=value arguments "
                                       "may then change only the stages' epochs and runtime settings)."),
    overrides: list[str] | None = typer.Argument(None, help="key=value overrides, e.g. joint.epochs=5"),
) -> None:
    """Train G, D and the grader with the paper's schedule (pre-training, then the joint stage).

    A resumed run keeps its own config: `--resume RUN joint.epochs=80` trains more epochs; a changed network or
    data field is refused, as is an edit of RUN/config.yaml that the command line does not repeat.
    """
    from drcollab.config import load_config
    from drcollab.errors import DrcollabError, TrainingError, WriteError
    from drcollab.training.config import TrainConfig
    from drcollab.training.run_folder import STATE_FILE
    from drcollab.training.trainer import run_training

    run_dir = resume
    try:
        if resume is not None:
            if config is not None:
                raise typer.BadParameter("--resume continues a run with its own config: drop --config (key=value "
                                         "arguments may raise epochs)")
            bundle = run_training(None, resume, resume=True, changes=overrides or [])
        else:
            cfg = load_config(TrainConfig, config, overrides or [])
            run_dir = out or Path("runs") / cfg.name
            bundle = run_training(cfg, run_dir)
    except TrainingError as err:
        typer.echo(f"training stopped: {err}", err=True)
        raise typer.Exit(1) from err
    except DrcollabError as err:
        resumable = isinstance(err, WriteError) and run_dir is not None and (run_dir / STATE_FILE).is_file()
        then = f"; then continue with: drcollab train --resume {run_dir}" if resumable else ""
        typer.echo(f"error: {err}{then}", err=True)
        raise typer.Exit(2) from err
    except KeyboardInterrupt as err:
        typer.echo(f"interrupted ({err}); continue with: drcollab train --resume {run_dir}", err=True)
        raise typer.Exit(130) from err
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one line from rank 0
        typer.echo(f"model bundle: {bundle}")


@app.command("plan")
def plan_cmd(
    config: Path = typer.Option(..., "--config", "-c", help="YAML training config (see configs/)."),
    gpus: int = typer.Option(1, "--gpus", min=1, help="GPUs (DDP processes) the global batches split over."),
    gpu_memory: str = typer.Option("80GB", "--gpu-memory", help="Memory of each GPU, e.g. 80GB or 141GB."),
    precision: str = typer.Option("bf16", "--precision", help="GPU autocast: bf16 (A100/H100), fp16 (V100), off."),
    measure_size: int = typer.Option(128, "--measure-size", min=32, help="Image side measured at on this machine."),
    overrides: list[str] | None = typer.Argument(None, help="key=value overrides, e.g. joint.batch_size=32"),
) -> None:
    """Memory per GPU of each stage, measured small on this machine and scaled to the config's image size."""
    import torch

    from drcollab.config import load_config
    from drcollab.precision import resolve_precision
    from drcollab.training.config import TrainConfig
    from drcollab.training.plan import format_rows, measure, parse_memory, plan_rows, quiet_native_logs

    cfg = load_config(TrainConfig, config, overrides or [])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with quiet_native_logs():
        memories = measure(cfg, device, resolve_precision(precision, device), measure_size)
    typer.echo(f"measured on {device} at {measure_size} px in {precision}; memory includes 2 GB reserved per GPU")
    typer.echo(format_rows(plan_rows(cfg, memories, gpus, parse_memory(gpu_memory))))


@app.command("evaluate")
def evaluate_cmd(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Run folder, its model/ bundle folder or bundle.json."),
    data: Path = typer.Option(..., "--data", help="Dataset root (IDRiD: the folder holding 'A. Segmentation')."),
    fmt: DataFormat = typer.Option(
        "auto", "--format", help="Dataset layout; auto detects it (IDRiD: part A segmentation, part B grading)."),
    split: Literal["train", "test"] | None = typer.Option(
        None, "--split", help="Official split; required for IDRiD and EyePACS, which have several."),
    val_fold_of: Path | None = typer.Option(
        None, "--val-fold-of", help="Score only the validation fold this run folder held out of the training split."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for metrics.json, report.md and figures."),
    batch_size: int = typer.Option(4, "--batch-size", min=1, help="Images per forward pass."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA if available), cpu, cuda or cuda:N."),
    overlays: int = typer.Option(3, "--overlays", min=0, help="Segmentation images to draw Fig. 4 overlays for."),
    tile: int | None = typer.Option(None, "--tile", min=0, help="G tile side in px (default: the bundle's; 0: none)."),
    tta: Tta | None = typer.Option(None, "--tta", help=TTA_HELP),
    workers: int = typer.Option(2, "--workers", min=0, help="Threads decoding and preprocessing images ahead."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Preprocessing cache (e.g. the training one)."),
    outside_fov: OutsideFov = typer.Option(
        "zero", "--outside-fov", help="Lesion maps outside the field of view: zero (default) or keep G's raw outputs "
        "(how drcollab scored before, and the paper's whole-image AUCs)."),
    plain: bool = typer.Option(False, "--plain", help=PLAIN_HELP),
    min_fov_fraction: float | None = typer.Option(None, "--min-fov-fraction", min=0.0, max=2.0,
                                                  help="Leave out images whose field of view is narrower than this "
                                                  "fraction of the size the model resizes it to (0: score every image;"
                                                  " default: the bundle's own, 0.75 unless it records another)."),
) -> None:
    """Evaluate a trained model: per-lesion pixel AUCs at full resolution, grading metrics, paper-shaped report."""
    from drcollab.errors import DrcollabError
    from drcollab.evaluation.evaluate import evaluate

    try:
        eval_set = _read_set(data, fmt, split, val_fold_of)
        device = _auto_device(device)
        metrics = evaluate(checkpoint, eval_set, out, batch_size=batch_size, device=device, overlays=overlays,
                           tile=tile, tta=tta, workers=workers, cache_dir=cache_dir, outside_fov=outside_fov,
                           min_fov_fraction=min_fov_fraction, setting="plain" if plain else "auto")
    except DrcollabError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from err
    def num(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.4f}"

    typer.echo(f"evaluated on {metrics['description']}")
    for note in metrics["skipped"]:
        typer.echo(f"not evaluated: {note}")
    if metrics["segmentation"]:
        typer.echo("AUC_PR " + ", ".join(f"{k} {num(v['auc_pr'])}" for k, v in metrics["segmentation"].items()))
    if metrics["grading"]:
        typer.echo(f"accuracy {num(metrics['grading']['accuracy'])}, kappa {num(metrics['grading']['kappa'])}")
    if metrics["messidor"]:
        typer.echo(", ".join(f"{t} AUC {num(metrics['messidor'][t]['auc'])}" for t in ("referral", "normal")))
    if metrics["referable"]:
        typer.echo(_referral_line(metrics["referable"]))
    typer.echo(f"report: {Path(out) / 'report.md'}")


def _referral_line(r: dict) -> str:
    """E.g. ``referral at P >= 0.5: sensitivity 1.000 (95% Wilson CI 0.931-1.000), specificity ...``."""
    def share(key: str) -> str:
        if r[key] is None:
            return f"{key} n/a"
        low, high = r[f"{key}_ci95"]
        return f"{key} {r[key]:.3f} (95% Wilson CI {low:.3f}-{high:.3f})"

    return f"referral at P >= {r['threshold']:.4g}: {share('sensitivity')}, {share('specificity')}"


def _read_set(data: Path, fmt: str, split: str | None, val_fold_of: Path | None) -> EvalSet:
    """The labelled set of ``evaluate`` and ``calibrate``: a dataset root, its layout and split, optionally the
    validation fold of a run."""
    from drcollab.data.sources import SPLIT_FORMATS
    from drcollab.errors import ConfigError
    from drcollab.evaluation.selection import detect_format, read_eval_set, restrict_to_val_fold
    from drcollab.training.run_folder import read_val_fold

    resolved = detect_format(data) if fmt == "auto" else fmt
    if split is None and (resolved == "idrid" or resolved in SPLIT_FORMATS):
        raise ConfigError(f"{data} holds several splits ({resolved}): pass --split train or --split test")
    eval_set = read_eval_set(data, resolved, split or "train")
    return eval_set if val_fold_of is None else restrict_to_val_fold(eval_set, read_val_fold(val_fold_of))


def _auto_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@app.command()
def calibrate(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Run folder, its model/ bundle folder or bundle.json."),
    data: Path = typer.Option(..., "--data", help="Labelled dataset root to choose the threshold on."),
    fmt: DataFormat = typer.Option("auto", "--format", help="Dataset layout (as for evaluate)."),
    split: Literal["train", "test"] | None = typer.Option(
        None, "--split", help="Official split; required for IDRiD and EyePACS, which have several."),
    val_fold_of: Path | None = typer.Option(
        None, "--val-fold-of", help="Use only the validation fold this run folder held out of the training split."),
    target_sensitivity: float | None = typer.Option(
        None, "--target-sensitivity", help="Refer at the largest threshold whose sensitivity is >= this, e.g. 0.90."),
    target_specificity: float | None = typer.Option(
        None, "--target-specificity", help="Refer at the smallest threshold whose specificity is >= this."),
    out: Path = typer.Option(..., "--out", "-o", help="New folder for the calibrated copy of the bundle."),
    batch_size: int = typer.Option(4, "--batch-size", min=1, help="Images per forward pass."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA if available), cpu, cuda or cuda:N."),
    workers: int = typer.Option(2, "--workers", min=0, help="Threads decoding and preprocessing images ahead."),
    min_fov_fraction: float | None = typer.Option(None, "--min-fov-fraction", min=0.0, max=2.0,
                                                  help="Leave out images whose field of view is narrower than this "
                                                  "fraction of the size the model resizes it to (0: use every image; "
                                                  "default: the bundle's own, 0.75 unless it records another)."),
) -> None:
    """Choose the referral threshold reaching a target sensitivity or specificity on a labelled set; write a copy of
    the bundle that refers at it, with a record of the set and what the threshold achieved (95% Wilson intervals).

    Exit codes: 0 written; 2 bad input (target, set, bundle, output folder); nothing is written then.
    """
    from drcollab.errors import DrcollabError
    from drcollab.evaluation.calibrate import calibrate as run_calibration
    from drcollab.evaluation.calibrate import check_target

    try:
        target, value = check_target(target_sensitivity, target_specificity)
        eval_set = _read_set(data, fmt, split, val_fold_of)
        result = run_calibration(checkpoint, eval_set, out, target, value, batch_size=batch_size,
                                 device=_auto_device(device), workers=workers, min_fov_fraction=min_fov_fraction)
    except DrcollabError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from err
    r = result.record
    typer.echo(f"calibrated on {r['set']['description']}: {r['images']} graded images, {r['positives']} referable "
               f"({r['rule']}), {r['negatives']} not" + (f"; {len(r['left_out'])} left out (field of view too narrow)"
                                                         if r["left_out"] else ""))
    typer.echo(f"target {target} >= {value:g}: threshold {r['threshold']:.4f} ({r['choice']}; was "
               f"{r['previous_threshold']:g})")
    typer.echo(f"sensitivity {result.point.sensitivity.text()}")
    typer.echo(f"specificity {result.point.specificity.text()}")
    typer.echo(f"bundle: {result.bundle} (a copy of {checkpoint} that refers at P >= {r['threshold']:.4f})")


@app.command("compare")
def compare_cmd(
    eval_dirs: list[Path] = typer.Argument(..., help="Output folders of drcollab evaluate."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for compare.md and curves.png."),
    labels: str | None = typer.Option(None, "--labels", help="Comma-separated row labels, one per folder."),
) -> None:
    """Merge several evaluations (e.g. the four ablations) into one table set and one ROC / PR figure."""
    from drcollab.errors import DrcollabError
    from drcollab.evaluation.compare import compare

    try:
        path = compare(eval_dirs, out, None if labels is None else [s.strip() for s in labels.split(",")])
    except DrcollabError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from err
    typer.echo(f"comparison: {path}")


MIN_SIDE, MAX_ASPECT = ImageLimits().min_side, ImageLimits().max_aspect
MIN_FOV_HELP = ("Refuse images whose field of view is narrower than this fraction of the size the model resizes it "
                "to (0: no minimum; default: the bundle's own, 0.75 unless it records another).")


def _check_device(device: str) -> str:
    if device.split(":")[0] not in ("cpu", "cuda"):
        raise typer.BadParameter(f"--device {device!r}: use cpu, cuda or cuda:N")
    return device


@app.command()
def predict(
    inputs: list[Path] = typer.Argument(..., help="Image files and/or folders (searched recursively)."),
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Run folder, bundle folder, bundle.json or .onnx file."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder; a re-run skips unchanged images done before."),
    batch_size: int = typer.Option(4, "--batch-size", min=1, help="Images per forward pass."),
    device: str = typer.Option("cpu", "--device", callback=_check_device, help="cpu or cuda (torch engine)."),
    engine: str | None = typer.Option(None, "--engine", help="torch or onnx (default: onnx for a .onnx file)."),
    amp: bool = typer.Option(False, "--amp", help="bf16 autocast (torch engine)."),
    channels_last: bool = typer.Option(False, "--channels-last", help="channels_last memory format (torch engine)."),
    plain: bool = typer.Option(False, "--plain", help=PLAIN_HELP),
    maps: Literal["full", "model"] = typer.Option(
        "full", "--maps", help="Lesion maps on the photo's pixels (full) or at the model's resolution (model: "
        "faster, with the geometry that maps them back in result.json)."),
    tta: Tta | None = typer.Option(None, "--tta", help=TTA_HELP + " Torch engine only."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    min_side: int = typer.Option(MIN_SIDE, "--min-side", min=1, help="Refuse images with a shorter side (px)."),
    max_aspect: float = typer.Option(MAX_ASPECT, "--max-aspect", min=1.0, help="Refuse longer/shorter side above."),
    min_fov_fraction: float | None = typer.Option(None, "--min-fov-fraction", min=0.0, max=2.0, help=MIN_FOV_HELP),
    groups: Path | None = typer.Option(None, "--groups", help="CSV with the columns photo, patient, eye (left or "
                                       "right): also decide per eye and per patient (patients.csv, eyes.csv)."),
    group_pattern: str | None = typer.Option(None, "--group-pattern", help="Read patient and eye from the file "
                                             "names instead: eyepacs (<patient>_<left|right>.jpeg)."),
) -> None:
    """Grade images and map their lesions; writes per-image PNGs plus predictions.csv and predictions.json (and, with
    --groups or --group-pattern, patients.csv, patients.json and eyes.csv).

    Exit codes: 0 at least one image predicted; 1 none succeeded; 2 usage or checkpoint error; 130 interrupted.
    Under torchrun --nproc_per_node=N each rank takes every N-th image and rank 0 merges the results.
    """
    from drcollab.distributed import setup, teardown
    from drcollab.errors import ConfigError, DrcollabError
    from drcollab.inference.batch import PredictInterrupted, describe, predict_images
    from drcollab.inference.engine import load_engine
    from drcollab.inference.gradability import GradabilityConfig
    from drcollab.inference.grouping import Grouping

    dist = setup("cpu")  # gloo: the ranks only meet at barriers, whatever device the model runs on
    try:
        if groups is not None and group_pattern is not None:
            raise ConfigError("--groups and --group-pattern both given: group the photos one way")
        grouping = Grouping.from_csv(groups) if groups is not None else \
            None if group_pattern is None else Grouping.from_pattern(group_pattern)
        dev = f"cuda:{dist.local_rank}" if device == "cuda" and dist.enabled else device
        model = load_engine(checkpoint, engine, dev, amp, channels_last, tta, "plain" if plain else "auto")
        summary = predict_images(model, inputs, out, batch_size, dist, progress,
                                 ImageLimits(min_side=min_side, max_aspect=max_aspect),
                                 GradabilityConfig(min_fov_fraction=min_fov_fraction), maps, grouping)
    except DrcollabError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from err
    except KeyboardInterrupt as err:
        done = ""
        if isinstance(err, PredictInterrupted):
            s = err.summary
            done = (f" after {s.succeeded} of {s.succeeded + s.unfinished} images; {out / 'predictions.csv'} lists "
                    "those done")
        typer.echo(f"interrupted{done}; finished images are kept in {out}: run the same command again to predict "
                   "the rest", err=True)
        raise typer.Exit(130) from err
    finally:
        teardown()
    if not dist.is_main:
        return
    typer.echo(f"engine: {model.setting_text()}")
    typer.echo(describe(summary))
    if summary.succeeded == 0:
        typer.echo("error: no image was predicted", err=True)
        raise typer.Exit(1)


@app.command()
def export(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Run folder, bundle folder or bundle.json."),
    fmt: str = typer.Option("onnx", "--format", help="Export format (onnx)."),
    out: Path = typer.Option(..., "--out", "-o", help="The file to write, e.g. model.onnx."),
) -> None:
    """Export G + grader as one ONNX graph (image -> lesion and grade probabilities), preprocessing in its metadata.

    Exit codes: 0 written; 1 the export failed; 2 usage or checkpoint error.
    """
    from drcollab.errors import DrcollabError
    from drcollab.inference.onnx_export import ExportError, export_onnx

    if fmt != "onnx":
        raise typer.BadParameter(f"--format {fmt!r}: only onnx is supported")
    try:
        result = export_onnx(checkpoint, out)
    except ExportError as err:
        typer.echo(f"export failed: {err}", err=True)
        raise typer.Exit(1) from err
    except DrcollabError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from err
    size = "dynamic (multiples of 16)" if result.dynamic_size else result.note
    typer.echo(f"wrote {result.path}: outputs {', '.join(result.outputs)}; batch dynamic; height and width {size}")
    typer.echo(f"onnxruntime vs PyTorch at {result.size}x{result.size}: max abs difference {result.max_abs_diff:.2e}")


@app.command()
def serve(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Run folder, bundle folder, bundle.json or .onnx file."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (0.0.0.0 exposes it to the network)."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port."),
    max_upload_mb: float = typer.Option(20.0, "--max-upload-mb", min=0.01, help="Larger uploads get HTTP 413."),
    device: str = typer.Option("cpu", "--device", callback=_check_device, help="cpu or cuda (torch engine)."),
    engine: str | None = typer.Option(None, "--engine", help="torch or onnx (default: onnx for a .onnx file)."),
    min_side: int = typer.Option(MIN_SIDE, "--min-side", min=1, help="Refuse images with a shorter side (px)."),
    max_aspect: float = typer.Option(MAX_ASPECT, "--max-aspect", min=1.0, help="Refuse longer/shorter side above."),
    max_queue: int = typer.Option(DEFAULT_MAX_QUEUE, "--max-queue", min=1, help="Photos waiting or being graded at "
                                  "once; more get HTTP 503 with Retry-After at once."),
    max_wait: float = typer.Option(DEFAULT_MAX_WAIT_S, "--max-wait", min=0.1, help="Seconds a photo may wait for the "
                                   "model; one that would wait longer gets HTTP 503 with Retry-After."),
    plain: bool = typer.Option(False, "--plain", help=PLAIN_HELP),
    min_fov_fraction: float | None = typer.Option(None, "--min-fov-fraction", min=0.0, max=2.0, help=MIN_FOV_HELP),
) -> None:
    """Serve the model: web page at /, POST /predict, GET /health, API docs at /docs (offline)."""
    import uvicorn

    from drcollab.errors import DrcollabError
    from drcollab.inference.gradability import GradabilityConfig
    from drcollab.service.app import create_app

    try:
        limits = ImageLimits(min_side=min_side, max_aspect=max_aspect)
        quality = GradabilityConfig(min_fov_fraction=min_fov_fraction)
        web_app = create_app(checkpoint, engine, device, max_upload_mb, limits=limits, quality=quality,
                             max_queue=max_queue, max_wait_s=max_wait, setting="plain" if plain else "auto")
    except DrcollabError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from err
    typer.echo(f"engine: {web_app.state.service.engine.setting_text()}")
    typer.echo(f"serving {checkpoint} on http://{host}:{port}/ (API docs: /docs, schema: /openapi.json)")
    uvicorn.run(web_app, host=host, port=port)


@app.command()
def demo(
    config: Path = typer.Option(Path("configs/demo.yaml"), "--config", "-c", help="Training config of the demo."),
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="Folder for data, run and evaluation."),
    overrides: list[str] | None = typer.Argument(None, help="key=value overrides of the training config"),
) -> None:
    """Synthetic data -> every training stage -> evaluation on a synthetic test set (resumable)."""
    from drcollab.demo import run_demo, summary_lines
    from drcollab.errors import DrcollabError

    try:
        metrics = run_demo(config, out, overrides=overrides or [])
    except DrcollabError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from err
    except KeyboardInterrupt as err:
        typer.echo(f"interrupted; run the same command again to continue ({out})", err=True)
        raise typer.Exit(130) from err
    typer.echo("\n".join(summary_lines(metrics, out)))


if __name__ == "__main__":
    app()
