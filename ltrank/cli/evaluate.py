"""`ltrank eval`: a checkpoint's accuracy on the balanced test set, per group and per class, and
of post-hoc adjustments of its model (``--posthoc``, one row each, each recorded as a run)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from ltrank.cli.choices import Groups
from ltrank.engine.checkpoint_eval import CheckpointEvaluation, evaluate_checkpoint
from ltrank.groups import get_scheme, group_classes
from ltrank.rebalance.spec import FORMS, parse_posthoc


def _pct(value: Optional[float]) -> str:
    return "empty" if value is None else f"{value:.2f}"


def _group_table(ev: CheckpointEvaluation, scheme: str) -> Table:
    rec = ev.record
    table = Table(
        title=f"{rec.recipe_name} seed {rec.seed}, epoch {ev.metrics.epoch}: test top-1 (%)",
        caption=f"{rec.data.label()}, {scheme} groups; top-1 over all test images {ev.metrics.top1:.2f}",
        title_justify="left", caption_justify="left",
    )
    for col, justify in (("group", "left"), ("classes", "right"), ("train images", "right"), ("accuracy", "right")):
        table.add_column(col, justify=justify)
    members = group_classes(ev.class_counts, scheme)
    groups = ev.metrics.groups[scheme]
    for name, classes in members.items():
        table.add_row(name, str(len(classes)), str(sum(ev.class_counts[c] for c in classes)), _pct(groups[name]))
    table.add_row("Average", str(len(ev.class_counts)), str(sum(ev.class_counts)), _pct(groups["Average"]), style="bold")
    return table


def _posthoc_table(ev: CheckpointEvaluation, scheme: str) -> Table:
    """One row per model: as trained, then each --posthoc adjustment; columns: the scheme's groups."""
    columns = get_scheme(scheme).columns
    table = Table(title="post-hoc adjustments: test top-1 (%)", title_justify="left",
                  caption=f"{scheme} groups", caption_justify="left")
    table.add_column("model")
    for col in columns:
        table.add_column(col, justify="right")
    rows = [("as trained", ev.metrics)] + [(a.label, a.metrics) for a in ev.adjusted]
    for label, metrics in rows:
        table.add_row(label, *(_pct(metrics.groups[scheme][c]) for c in columns))
    return table


def _per_class_table(ev: CheckpointEvaluation, scheme: str) -> Table:
    group_of = {c: name for name, classes in group_classes(ev.class_counts, scheme).items() for c in classes}
    table = Table(title="per-class test accuracy (%)", title_justify="left")
    for col, justify in (("#", "right"), ("class", "left"), ("group", "left"), ("train images", "right"),
                         ("test images", "right"), ("accuracy", "right")):
        table.add_column(col, justify=justify)
    for a in ev.adjusted:
        table.add_column(a.label, justify="right")
    for c, acc in enumerate(ev.metrics.per_class):
        adjusted = (f"{a.metrics.per_class[c]:.2f}" for a in ev.adjusted)
        table.add_row(str(c), ev.class_names[c], group_of[c], str(ev.class_counts[c]), str(ev.test_counts[c]),
                      f"{acc:.2f}", *adjusted)
    return table


def command(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint.pt written by 'ltrank train', or its run folder.")],
    data_dir: Annotated[
        Optional[Path], typer.Option(help="Folder with the data (default: $LTRANK_DATA_DIR, else the cache).")
    ] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "cpu",
    per_class: Annotated[bool, typer.Option("--per-class", help="Also show every class's accuracy.")] = False,
    groups: Annotated[Groups, typer.Option(help="Class groups: thirds (Head/Body/Tail) or shots.")] = Groups.thirds,
    posthoc: Annotated[Optional[list[str]], typer.Option(
        "--posthoc", metavar="ADJUSTMENT",
        help=f"Also evaluate a post-hoc adjustment of the model, repeatable, one row each: {FORMS}. "
             "For a finished run each is recorded in RUN/posthoc/<adjustment>/ for 'ltrank compare'.")] = None,
) -> None:
    """Evaluate a checkpoint on the balanced test set: per-group (and per-class) accuracy."""
    specs = [parse_posthoc(text) for text in posthoc or []]
    ev = evaluate_checkpoint(checkpoint, data_dir=data_dir, device=device, posthoc=specs)
    console = Console(soft_wrap=False)
    if not console.is_terminal:
        console = Console(soft_wrap=False, width=200)
    console.print(_group_table(ev, groups.value))
    if ev.adjusted:
        console.print(_posthoc_table(ev, groups.value))
    if per_class:
        console.print(_per_class_table(ev, groups.value))
    recorded = ev.record.final if ev.record.final and ev.record.final.epoch == ev.metrics.epoch else None
    if recorded is not None:
        console.print(f"recorded at training time for epoch {recorded.epoch}: top-1 {recorded.top1:.2f}")
    for a in ev.adjusted:
        if a.record_path is not None:
            console.print(f"recorded {a.label}: {a.record_path}", markup=False, highlight=False)
    for note in ev.notes:
        console.print(f"note: {note}")
    console.print(f"evaluated {sum(ev.test_counts)} test images on {ev.device} in {ev.seconds:.1f} s")
