"""The Typer application and the error boundary.

Every user error (:class:`~ltrank.errors.LtrankError`) becomes one line on stderr and exit
code 2; a failed run (:class:`~ltrank.errors.RunFailed`) exits 1. No traceback reaches users.
"""

from __future__ import annotations

from typing import Annotated, Optional

import click
import typer
from typer.core import TyperGroup

from ltrank.cli import compare, evaluate, introspect, make_dataset, train
from ltrank.errors import LtrankError, RunFailed



class _ErrorBoundary(TyperGroup):
    """Turns ltrank's errors into one stderr line and an exit code, for main() and CliRunner."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except LtrankError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(code=exc.exit_code) from None
        except RunFailed as exc:
            typer.echo(f"run failed: {exc}", err=True)
            raise typer.Exit(code=exc.exit_code) from None


app = typer.Typer(
    name="ltrank",
    cls=_ErrorBoundary,
    help="Ranking-based losses and baselines for long-tailed visual recognition.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("make-dataset")(make_dataset.command)
app.command("train")(train.command)
app.command("eval")(evaluate.command)
app.command("compare")(compare.command)
app.add_typer(introspect.list_app, name="list")
app.add_typer(introspect.show_app, name="show")


def _version(value: bool) -> None:
    if value:
        typer.echo(introspect.version_text())
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version, is_eager=True, help="Show ltrank, torch and plugin versions."),
    ] = None,
) -> None:
    """ltrank: long-tailed recognition with AP Loss, CB Delta, CB Primary Term and baselines."""


def main() -> None:
    """Console-script entry point."""
    app()
