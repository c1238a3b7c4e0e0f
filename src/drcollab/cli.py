"""The ``drcollab`` command line: thin subcommands over library functions."""

from __future__ import annotations

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


if __name__ == "__main__":
    app()
