"""`ltrank eval`: a checkpoint's accuracy on the balanced test set, per group and per class."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from ltrank.cli.choices import Groups
from ltrank.cli.train import DEFAULT_DATA_WORKERS
from ltrank.engine.checkpoint_eval import CheckpointEvaluation, evaluate_checkpoint
from ltrank.groups import group_classes


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


def _per_class_table(ev: CheckpointEvaluation, scheme: str) -> Table:
    group_of = {c: name for name, classes in group_classes(ev.class_counts, scheme).items() for c in classes}
    table = Table(title="per-class test accuracy (%)", title_justify="left")
    for col, justify in (("#", "right"), ("class", "left"), ("group", "left"), ("train images", "right"),
                         ("test images", "right"), ("accuracy", "right")):
        table.add_column(col, justify=justify)
    for c, acc in enumerate(ev.metrics.per_class):
        table.add_row(str(c), ev.class_names[c], group_of[c], str(ev.class_counts[c]), str(ev.test_counts[c]), f"{acc:.2f}")
    return table


def command(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint.pt written by 'ltrank train', or its run folder.")],
    data_dir: Annotated[
        Optional[Path], typer.Option(help="Folder with the data (default: $LTRANK_DATA_DIR, else the cache).")
    ] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "cpu",
    per_class: Annotated[bool, typer.Option("--per-class", help="Also show every class's accuracy.")] = False,
    groups: Annotated[Optional[Groups], typer.Option(help="Class groups: thirds (Head/Body/Tail) or shots (Many/Medium/Few); default: the recipe's eval.groups.")] = None,
    data_workers: Annotated[int, typer.Option("--data-workers", min=0, metavar="N", help="Processes decoding images of a streamed source.")] = DEFAULT_DATA_WORKERS,
) -> None:
    """Evaluate a checkpoint on the balanced test set: per-group (and per-class) accuracy."""
    ev = evaluate_checkpoint(checkpoint, data_dir=data_dir, device=device, workers=data_workers)
    groups = Groups(groups.value if groups is not None else (ev.record.recipe.get("eval") or {}).get("groups", "thirds"))
    console = Console(soft_wrap=False)
    if not console.is_terminal:
        console = Console(soft_wrap=False, width=200)
    console.print(_group_table(ev, groups.value))
    if per_class:
        console.print(_per_class_table(ev, groups.value))
    recorded = ev.record.final if ev.record.final and ev.record.final.epoch == ev.metrics.epoch else None
    if recorded is not None:
        console.print(f"recorded at training time for epoch {recorded.epoch}: top-1 {recorded.top1:.2f}")
    for note in ev.notes:
        console.print(f"note: {note}")
    console.print(f"evaluated {sum(ev.test_counts)} test images on {ev.device} in {ev.seconds:.1f} s")
