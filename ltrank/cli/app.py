"""The Typer application and the error boundary.

Every user error (:class:`~ltrank.errors.LtrankError`) becomes one line on stderr and exit
code 2; a failed run (:class:`~ltrank.errors.RunFailed`) exits 1. No traceback reaches users.
"""

from __future__ import annotations

from typing import Annotated, Any, NoReturn, Optional

import typer
from typer.core import TyperGroup

from ltrank.cli import compare, evaluate, introspect, make_dataset, reproduce, sweep, train
from ltrank.errors import LtrankError, RunFailed

# click's UsageError, reached through typer's public BadParameter (typer >= 0.20 vendors click).
UsageError: type[Exception] = typer.BadParameter.__bases__[0]



def _show_flags_bare(command: Any) -> None:
    """typer's help gives an on/off flag a ``<bool>`` type, as if it took a value
    (``--resume <bool>``); an empty metavar shows every flag of ``command`` and its
    subcommands, ``--help`` included, as the bare flag it is."""
    help_option = command.get_help_option(typer.Context(command))
    for param in [*command.params, help_option]:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        _show_flags_bare(sub)


class _ErrorBoundary(TyperGroup):
    """Turns every user error into one stderr line and an exit code, for main() and CliRunner.

    Bad command lines (click's usage errors) also get one line plus where to find help, instead
    of click's boxed usage screen. Help shows flags as flags (:func:`_show_flags_bare`).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _show_flags_bare(self)

    def make_context(self, info_name, args, parent=None, **extra):  # type: ignore[no-untyped-def]
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except UsageError as exc:
            _usage_error(exc)

    def invoke(self, ctx: typer.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except UsageError as exc:
            _usage_error(exc)
        except LtrankError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(code=exc.exit_code) from None
        except RunFailed as exc:
            typer.echo(f"run failed: {exc}", err=True)
            raise typer.Exit(code=exc.exit_code) from None


def _usage_error(exc: Any) -> NoReturn:
    where = exc.ctx.command_path if exc.ctx is not None else "ltrank"
    # no_args_is_help has already printed the help and leaves an empty message
    message = " ".join(exc.format_message().split()).rstrip(".") or "missing command"
    typer.echo(f"error: {message} (see '{where} --help')", err=True)
    raise typer.Exit(code=2) from None


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
app.command("sweep")(sweep.command)
app.command("reproduce")(reproduce.command)
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
    """Console-script entry point (also ``python -m ltrank``)."""
    app(prog_name="ltrank")
