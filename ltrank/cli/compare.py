"""`ltrank compare`: run records -> thesis-shaped tables (mean ± std over seeds, best in bold).

Everything that came from data (method labels with their ``[hash]`` suffix, recipe names,
publication names, notes) reaches rich as :class:`~rich.text.Text`, never as markup. The table
fits the terminal without breaking a word (labels wrap at spaces; numbers never wrap); anchor
publications are footnotes, so their rows stay one short line; piped output is not padded.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from ltrank.cli.choices import Groups
from ltrank.cli.console import UNLIMITED, make_console, print_lines, wrap_width, wrapped
from ltrank.compare import (
    Comparison,
    anchor_sources,
    compare_records,
    default_scheme,
    format_stat,
    reference_lines,
    to_csv,
    to_json,
    to_markdown,
)
from ltrank.compare import Table as ComparisonTable
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


#: Indent of the reference lines under a row.
INDENT = 2


def _longest_word(texts: list[str]) -> int:
    return max((len(word) for text in texts for word in text.split()), default=1)


def _rich_table(comparison: Comparison, t: ComparisonTable, footnotes: list[str], compact: bool = False) -> Table:
    """One dataset's rows (bold: the best mean of a column among several rows), each followed by
    the dim reference lines beside it; a line separates the methods when there are references.

    ``compact`` writes ``74.77±0.09`` and leaves out the outer frame: 10 columns more for the
    method labels in a narrow terminal.
    """
    best = comparison.best(t)

    def stat(text: str) -> str:
        return text.replace(" ± ", "±") if compact else text

    lines = {id(row): reference_lines(comparison, row, footnotes) for row in t.rows}
    labels = [row.label for row in t.rows] + [label for ref in lines.values() for label, _ in ref]
    table = Table(show_edge=not compact)
    table.add_column("Method", min_width=_longest_word(labels) + INDENT)
    table.add_column("n", justify="right", no_wrap=True)
    for col in comparison.columns:
        table.add_column(col, justify="right", no_wrap=True)
    for i, row in enumerate(t.rows):
        cells = [Text(stat(format_stat(row.cells[c])), style="bold" if i in best.get(c, ()) else "")
                 for c in comparison.columns]
        table.add_row(Text(row.label), Text(str(row.n)), *cells)
        for label, ref in lines[id(row)]:  # indented as a whole, wrapped lines too
            table.add_row(Padding(Text(label.strip()), (0, 0, 0, INDENT)), Text(""),
                          *(Text(stat(ref[c])) for c in comparison.columns), style="dim")
        if lines[id(row)] and i < len(t.rows) - 1:
            table.add_section()
    return table


def _natural_width(console: Console, table: Table) -> int:
    """The width ``table`` takes when nothing limits it."""
    return console.measure(table, options=console.options.update_width(UNLIMITED)).maximum


def _rich_tables(comparison: Comparison, console: Optional[Console] = None) -> list[Table]:
    """The rich table of every dataset (anchors as footnote numbers, see :func:`_print_table`),
    compact where the full table would not fit ``console``'s width."""
    footnotes = anchor_sources(comparison)
    tables = []
    for t in comparison.tables:
        table = _rich_table(comparison, t, footnotes)
        if console is not None and _natural_width(console, table) > console.width:
            table = _rich_table(comparison, t, footnotes, compact=True)
        tables.append(table)
    return tables


def _print_table(console: Console, comparison: Comparison) -> None:
    """Each dataset's title and table; then, as plain wrapped lines, what the numbers and the
    group columns are, the anchor footnotes, and the notes."""
    width = wrap_width(console)
    footnotes = anchor_sources(comparison)
    for t, table in zip(comparison.tables, _rich_tables(comparison, console)):
        print_lines(console, wrapped(t.dataset, width), style="bold")
        console.print(table)
    print_lines(console, wrapped(comparison.caption, width, "", "  "))
    print_lines(console, wrapped(comparison.legend, width, "", "  "))
    for i, source in enumerate(footnotes, start=1):
        print_lines(console, wrapped(source, width, f"[{i}] ", "    "))
    for note in [n for t in comparison.tables for n in t.notes] + comparison.notes:
        print_lines(console, wrapped(note, width, "note: ", "  "))


def command(
    paths: Annotated[
        list[Path], typer.Argument(help="Run records (record.json) or folders searched recursively for them.")
    ],
    groups: Annotated[Optional[Groups], typer.Option(help="Class groups: thirds (Head/Body/Tail, as the thesis) or shots (Many/Medium/Few); default: the runs' recipes' eval.groups (shots for ImageNet-LT, Places-LT, iNaturalist), thirds when they differ.")] = None,
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
    """Compare runs: one row per config (mean ± std over seeds); bold marks the best of several rows."""
    files = find_records(paths)
    records = [(path, load_record(path)) for path in files]
    ref = load_reference(reference) if reference else None
    scheme = groups.value if groups is not None else default_scheme(rec for _, rec in records)
    comparison = compare_records(
        records, scheme=scheme, metric=metric.value, reference=ref, allow_mixed=allow_mixed
    )
    if fmt is Format.table:
        _print_table(make_console(), comparison)
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
