"""The ``drcollab`` command line: thin subcommands over library functions."""

from __future__ import annotations

from pathlib import Path

import typer

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
    from drcollab import __version__

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
    resume: Path | None = typer.Option(None, "--resume", help="Continue the run in this folder."),
    overrides: list[str] | None = typer.Argument(None, help="key=value overrides, e.g. joint.epochs=5"),
) -> None:
    """Train G, D and the grader with the paper's schedule (pre-training, then the joint stage)."""
    from drcollab.config import load_config
    from drcollab.errors import DrcollabError, TrainingError
    from drcollab.training.config import TrainConfig
    from drcollab.training.trainer import run_training

    run_dir = resume
    try:
        if resume is not None:
            if config is not None or overrides:
                raise typer.BadParameter("--resume continues a run with its own config: drop --config and overrides")
            bundle = run_training(None, resume, resume=True)
        else:
            cfg = load_config(TrainConfig, config, overrides or [])
            run_dir = out or Path("runs") / cfg.name
            bundle = run_training(cfg, run_dir)
    except TrainingError as err:
        typer.echo(f"training stopped: {err}", err=True)
        raise typer.Exit(1) from err
    except DrcollabError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from err
    except KeyboardInterrupt as err:
        typer.echo(f"interrupted ({err}); continue with: drcollab train --resume {run_dir}", err=True)
        raise typer.Exit(130) from err
    typer.echo(f"model bundle: {bundle}")


if __name__ == "__main__":
    app()
