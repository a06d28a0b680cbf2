"""`ltrank compare`: run records -> thesis-shaped tables (mean ± std over seeds, best in bold)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from ltrank.cli.choices import Groups
from ltrank.compare import (
    Comparison,
    compare_records,
    format_stat,
    reference_lines,
    to_csv,
    to_json,
    to_markdown,
)
from ltrank.reference import AVAILABLE, load_reference
from ltrank.records import load_record
from ltrank.run_folder import find_records


class Format(str, Enum):
    table = "table"
    markdown = "markdown"
    csv = "csv"
    json = "json"


class Metric(str, Enum):
    last = "last"
    best = "best"


def _rich_tables(comparison: Comparison) -> list[Table]:
    tables = []
    for t in comparison.tables:
        best = comparison.best(t)
        table = Table(title=t.dataset, caption=comparison.caption, title_justify="left", caption_justify="left")
        table.add_column("Method")
        table.add_column("n", justify="right")
        for col in comparison.columns:
            table.add_column(col, justify="right")
        for i, row in enumerate(t.rows):
            cells = [
                f"[bold]{format_stat(row.cells[c])}[/bold]" if i in best.get(c, ()) else format_stat(row.cells[c])
                for c in comparison.columns
            ]
            table.add_row(row.label, str(row.n), *cells)
            for label, ref in reference_lines(comparison, row):
                table.add_row(label, "", *(ref[c] for c in comparison.columns), style="dim")
        tables.append(table)
    return tables


def command(
    paths: Annotated[
        list[Path], typer.Argument(help="Run records (record.json) or folders searched recursively for them.")
    ],
    groups: Annotated[Groups, typer.Option(help="Class groups: thirds (Head/Body/Tail, as the thesis) or shots.")] = Groups.thirds,
    fmt: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.table,
    reference: Annotated[
        Optional[str], typer.Option(help=f"Show published numbers beside ours: {', '.join(AVAILABLE)}.")
    ] = None,
    plot: Annotated[
        Optional[Path], typer.Option(help="Also save per-class accuracy vs training count per method (PNG; needs matplotlib).")
    ] = None,
    metric: Annotated[
        Metric, typer.Option(help="last: last epoch (what the thesis reports); best: each run's best epoch.")
    ] = Metric.last,
    allow_mixed: Annotated[
        bool, typer.Option("--allow-mixed", help="Allow runs on different datasets: one table per dataset.")
    ] = False,
) -> None:
    """Compare runs: one row per config (mean ± std over seeds), best value per column in bold."""
    files = find_records(paths)
    records = [(path, load_record(path)) for path in files]
    ref = load_reference(reference) if reference else None
    comparison = compare_records(
        records, scheme=groups.value, metric=metric.value, reference=ref, allow_mixed=allow_mixed
    )
    if fmt is Format.table:
        console = Console(soft_wrap=False)
        if not console.is_terminal:  # piped: do not wrap method labels at 80 columns
            console = Console(soft_wrap=False, width=200)
        for table in _rich_tables(comparison):
            console.print(table)
        for t in comparison.tables:
            for note in t.notes:
                console.print(f"note: {note}")
        for note in comparison.notes:
            console.print(f"note: {note}")
    elif fmt is Format.markdown:
        typer.echo(to_markdown(comparison), nl=False)
    elif fmt is Format.csv:
        typer.echo(to_csv(comparison), nl=False)
    else:
        typer.echo(to_json(comparison), nl=False)
    if plot is not None:
        from ltrank.plot import plot_per_class

        saved = plot_per_class(comparison, plot)
        typer.echo(f"saved plot: {saved}", err=True)
