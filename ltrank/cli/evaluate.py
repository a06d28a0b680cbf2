"""`ltrank eval`: a checkpoint's accuracy on the balanced test set, per group and per class, and
of post-hoc adjustments of its model (``--posthoc``, one row each, each recorded as a run).

Names from data (recipe, classes, paths) reach rich as :class:`~rich.text.Text`, never as
markup; titles and notes are wrapped at spaces to the terminal, and piped output is not padded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ltrank.cli.choices import Groups
from ltrank.cli.train import DEFAULT_DATA_WORKERS
from ltrank.cli.console import make_console, print_lines, wrap_width, wrapped
from ltrank.engine.checkpoint_eval import CheckpointEvaluation, evaluate_checkpoint
from ltrank.groups import get_scheme, group_classes
from ltrank.rebalance.spec import FORMS, parse_posthoc
from ltrank.text import count, plural


def _pct(value: Optional[float]) -> str:
    return "empty" if value is None else f"{value:.2f}"


def _title(ev: CheckpointEvaluation) -> str:
    rec = ev.record
    return f"{rec.recipe_name} seed {rec.seed}, epoch {ev.metrics.epoch}: test top-1 (%)"


def _group_table(ev: CheckpointEvaluation, scheme: str) -> Table:
    table = Table()
    for col, justify in (("group", "left"), ("classes", "right"), ("train images", "right"), ("accuracy", "right")):
        table.add_column(col, justify=justify, no_wrap=col != "group")
    members = group_classes(ev.class_counts, scheme)
    groups = ev.metrics.groups[scheme]
    for name, classes in members.items():
        table.add_row(name, count(len(classes)), count(sum(ev.class_counts[c] for c in classes)), _pct(groups[name]))
    table.add_row("Average", count(len(ev.class_counts)), count(sum(ev.class_counts)), _pct(groups["Average"]),
                  style="bold")
    return table


def _posthoc_table(ev: CheckpointEvaluation, scheme: str) -> Table:
    """One row per model: as trained, then each --posthoc adjustment; columns: the scheme's groups."""
    columns = get_scheme(scheme).columns
    table = Table()
    table.add_column("model")
    for col in columns:
        table.add_column(col, justify="right", no_wrap=True)
    rows = [("as trained", ev.metrics)] + [(a.label, a.metrics) for a in ev.adjusted]
    for label, metrics in rows:
        table.add_row(Text(label), *(_pct(metrics.groups[scheme][c]) for c in columns))
    return table


def _per_class_table(ev: CheckpointEvaluation, scheme: str) -> Table:
    group_of = {c: name for name, classes in group_classes(ev.class_counts, scheme).items() for c in classes}
    table = Table()
    for col, justify in (("#", "right"), ("class", "left"), ("group", "left"), ("train images", "right"),
                         ("test images", "right"), ("accuracy", "right")):
        table.add_column(col, justify=justify, no_wrap=col != "class")
    for a in ev.adjusted:
        table.add_column(Text(a.label), justify="right")
    for c, acc in enumerate(ev.metrics.per_class):
        adjusted = (f"{a.metrics.per_class[c]:.2f}" for a in ev.adjusted)
        table.add_row(str(c), Text(ev.class_names[c]), group_of[c], count(ev.class_counts[c]),
                      count(ev.test_counts[c]), f"{acc:.2f}", *adjusted)
    return table


def _print(console: Console, ev: CheckpointEvaluation, scheme: str, per_class: bool) -> None:
    """Title, the group table, what the groups are, then (optionally) every class, and notes."""
    width = wrap_width(console)
    print_lines(console, wrapped(_title(ev), width, "", "  "), style="bold")
    console.print(_group_table(ev, scheme))
    caption = f"{ev.record.data.label()}; top-1 over all test images {ev.metrics.top1:.2f}"
    print_lines(console, wrapped(caption, width, "", "  "))
    print_lines(console, wrapped(get_scheme(scheme).summary, width, "", "  "))
    if ev.adjusted:
        print_lines(console, [f"post-hoc adjustments: test top-1 (%), {scheme} groups"], style="bold")
        console.print(_posthoc_table(ev, scheme))
    if per_class:
        print_lines(console, ["per-class test accuracy (%)"], style="bold")
        console.print(_per_class_table(ev, scheme))
    recorded = ev.record.final if ev.record.final and ev.record.final.epoch == ev.metrics.epoch else None
    if recorded is not None:
        print_lines(console, wrapped(f"recorded at training time for epoch {recorded.epoch}: top-1 {recorded.top1:.2f}",
                                     width, "", "  "))
    for a in ev.adjusted:
        if a.record_path is not None:
            print_lines(console, wrapped(f"recorded {a.label}: {a.record_path}", width, "", "  "))
    notes = list(ev.notes)
    capped = (ev.record.recipe.get("eval") or {}).get("max_batches")
    if capped:
        notes.append(f"the run tested on part of the test set while training (eval.max_batches = {capped}, a smoke "
                     "run); this evaluation uses every test image, so it differs from the recorded numbers")
    for note in notes:
        print_lines(console, wrapped(note, width, "note: ", "  "))
    done = f"evaluated {plural(sum(ev.test_counts), 'test image')} on {ev.device} in {ev.seconds:.1f} s"
    print_lines(console, wrapped(done, width, "", "  "))


def command(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint.pt written by 'ltrank train', or its run folder.")],
    data_dir: Annotated[
        Optional[Path], typer.Option(help="Folder with the data (default: $LTRANK_DATA_DIR, else the cache).")
    ] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "cpu",
    per_class: Annotated[bool, typer.Option("--per-class", help="Also show every class's accuracy.")] = False,
    groups: Annotated[Optional[Groups], typer.Option(help="Class groups: thirds (Head/Body/Tail) or shots (Many/Medium/Few); default: the recipe's eval.groups.")] = None,
    data_workers: Annotated[int, typer.Option("--data-workers", min=0, metavar="N", help="Processes decoding images of a streamed source.")] = DEFAULT_DATA_WORKERS,
    posthoc: Annotated[Optional[list[str]], typer.Option(
        "--posthoc", metavar="ADJUSTMENT",
        help=f"Also evaluate a post-hoc adjustment of the model, repeatable, one row each: {FORMS}. "
             "For a finished run each is recorded in RUN/posthoc/<adjustment>/ for 'ltrank compare'.")] = None,
) -> None:
    """Evaluate a checkpoint on the balanced test set: per-group (and per-class) accuracy."""
    specs = [parse_posthoc(text) for text in posthoc or []]
    ev = evaluate_checkpoint(checkpoint, data_dir=data_dir, device=device, posthoc=specs, workers=data_workers)
    scheme = groups.value if groups is not None else (ev.record.recipe.get("eval") or {}).get("groups", "thirds")
    _print(make_console(), ev, scheme, per_class)
