"""`ltrank make-dataset`: build a long-tailed split, write its manifest, show its classes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from pydantic import ValidationError
from rich.table import Table
from rich.text import Text

from ltrank.cli.console import make_console, print_lines, wrap_width, wrapped
from ltrank.data import DatasetConfig, load_longtailed
from ltrank.data.manifest import matplotlib_available, plot_class_counts, split_stem, write_manifest
from ltrank.errors import LtrankError, format_validation_error
from ltrank.groups import SCHEMES, group_classes
from ltrank.text import count

#: Where manifests and charts go unless --out says otherwise (relative to the working directory).
DEFAULT_OUT = Path("datasets")


def command(
    source: Annotated[
        str,
        typer.Argument(metavar="SOURCE", help="'cifar10', 'cifar100', 'npz:<path>' or 'folder:<path>' (see docs/data.md)."),
    ],
    imbalance_ratio: Annotated[float, typer.Option(help="n_max / n_min of the long-tailed training set (>= 1).")] = 100.0,
    profile: Annotated[str, typer.Option(help="Long-tail profile: 'exp', 'step', or 'asis' (keep a long-tailed source as it is).")] = "exp",
    seed: Annotated[int, typer.Option(help="Seed of the subset selection (numpy RandomState).")] = 0,
    data_dir: Annotated[
        Optional[Path],
        typer.Option(help="Where CIFAR files or pools are; default $LTRANK_DATA_DIR, else ~/.cache/ltrank/data."),
    ] = None,
    out: Annotated[
        Path,
        typer.Option(help="Folder for the split manifest (JSON) and the chart (PNG), created if missing; relative to the current folder."),
    ] = DEFAULT_OUT,
    groups: Annotated[str, typer.Option(help="Class groups shown: 'thirds' (Head/Body/Tail) or 'shots'.")] = "thirds",
    plot: Annotated[bool, typer.Option(help="Save a PNG bar chart of the class counts (needs matplotlib).")] = True,
) -> None:
    """Build the long-tailed training set of docs/method.md section 1 and write its split manifest."""
    if groups not in SCHEMES:
        raise LtrankError(f"unknown --groups {groups!r}; use {' or '.join(SCHEMES)}")
    try:
        cfg = DatasetConfig(source=source, imbalance_ratio=imbalance_ratio, profile=profile, seed=seed)
    except ValidationError as exc:
        options = {name: "--" + name.replace("_", "-") for name in DatasetConfig.model_fields}
        message = format_validation_error(exc, "", rename={**options, "source": "SOURCE"})
        raise LtrankError(message.replace(": Value error, ", ": ", 1)) from None
    data = load_longtailed(cfg, data_dir)
    members = group_classes(data.class_counts, groups)
    stem = split_stem(cfg)
    try:
        out.mkdir(parents=True, exist_ok=True)
        manifest_path = write_manifest(data.manifest, out / f"{stem}.json")
    except OSError as exc:
        raise LtrankError(f"--out {out}: cannot write the manifest there ({exc.strerror or exc}); choose a writable folder") from None

    console = make_console()
    width = wrap_width(console)
    manifest = data.manifest
    title = f"{manifest.source.name}: {manifest.profile} profile, IR {manifest.imbalance_ratio:g}, seed {manifest.seed}"
    print_lines(console, wrapped(title, width, "", "  "), style="bold")
    console.print(_table(manifest, members))
    src = manifest.source
    source = f"{src.kind} {src.path} (sha256 {src.fingerprint[:12]}...), selection rule {manifest.selection_rule}"
    print_lines(console, wrapped(source, width, "source: ", "  "))
    if src.note:
        print_lines(console, wrapped(src.note, width, "note: ", "  "))
    print_lines(console, [f"manifest: {manifest_path}"])
    if not plot:
        return
    if not matplotlib_available():
        print_lines(console, wrapped("no chart saved: matplotlib is not installed (pip install 'ltrank[plot]')",
                                     width, "note: ", "  "))
        return
    chart = plot_class_counts(manifest, members, out / f"{stem}.png")
    print_lines(console, [f"chart: {chart}"])


def _table(manifest, members: dict[str, list[int]]) -> Table:
    group_of = {c: name for name, classes in members.items() for c in classes}
    table = Table()
    for header in ("label", "class", "train", "source", "test", "group"):
        table.add_column(header, justify="right" if header in ("label", "train", "source", "test") else "left")
    for c, name in enumerate(manifest.class_names):
        table.add_row(
            str(c), Text(name), count(manifest.class_counts[c]), count(manifest.source_class_counts[c]),
            count(manifest.test_class_counts[c]), group_of[c],
        )
    sizes = ", ".join(f"{name} {len(classes)}" for name, classes in members.items())
    table.add_section()
    table.add_row(
        "", "total", count(sum(manifest.class_counts)), count(sum(manifest.source_class_counts)),
        count(sum(manifest.test_class_counts)), sizes,
    )
    return table
