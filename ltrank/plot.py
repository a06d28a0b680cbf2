"""Per-class accuracy against training-set size, one line per method (``ltrank compare --plot``),
and the log-axis ticks every ltrank chart shares.

Each dataset is one panel: x = training images of the class on a log axis (head on the left),
y = the class's test accuracy (%) averaged over the row's runs. Dashed lines mark where the
groups of the comparison's scheme (Head/Body/Tail or Many/Medium/Few, :mod:`ltrank.groups`)
meet, labelled at the top. Every method has its own marker and line style, so identical curves
(two configurations that learnt the same) stay visible.

matplotlib is the optional ``plot`` extra: imported here, lazily, with a clear error when absent.
The image is written atomically (temp file in the same folder, then ``os.replace``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ltrank.atomic import atomic_write
from ltrank.compare import Comparison
from ltrank.compare import Table as ComparisonTable
from ltrank.errors import LtrankError
from ltrank.groups import group_classes
from ltrank.text import count

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", ":", "-.")
#: Markers drawn per curve at most: with 100 classes every marker would hide the lines.
MAX_MARKERS = 12


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise LtrankError("--plot needs matplotlib; install it with: pip install 'ltrank[plot]'") from None
    return plt


def _plain(text: str) -> str:
    """``text`` as matplotlib shows it literally (a ``$`` would start mathtext)."""
    return text.replace("$", r"\$")


def label_log_axis(axis: Any) -> None:
    """Ticks at 1, 2 and 5 times each power of ten on a log axis, written as plain numbers
    with thousands separators (``50``, ``100``, ``200``, ``500``, ``1,000``): a reader sees
    the values between decades, not only ``10^2`` and ``10^3``."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: count(int(round(v))) if v >= 1 else f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def group_boundaries(class_counts: Sequence[int], scheme: str) -> list[tuple[str, float, float]]:
    """(group, largest count, smallest count) of each non-empty group of ``scheme``, head first."""
    spans = []
    for name, members in group_classes(class_counts, scheme).items():
        if members:
            counts = [class_counts[c] for c in members]
            spans.append((name, float(max(counts)), float(min(counts))))
    return spans


def _mark_groups(ax: Any, class_counts: Sequence[int], scheme: str) -> None:
    """Dashed lines where groups meet (halfway on the log axis) and each group's name on top."""
    spans = group_boundaries(class_counts, scheme)
    edges = [math.sqrt(low * high_next) for (_, _, low), (_, high_next, _) in zip(spans, spans[1:])]
    for x in edges:
        ax.axvline(x, color="0.45", linestyle=(0, (4, 3)), linewidth=0.9, zorder=1)
    left, right = ax.get_xlim()  # inverted: left is the largest count
    bounds = [left, *edges, right]
    for (name, _, _), start, end in zip(spans, bounds, bounds[1:]):
        ax.text(math.sqrt(start * end), 1.0, name, transform=ax.get_xaxis_transform(), ha="center", va="bottom",
                fontsize=9, color="0.3")


def _panel(ax: Any, table: ComparisonTable, comparison: Comparison) -> None:
    n_classes = len(table.class_counts)
    step = max(1, math.ceil(n_classes / MAX_MARKERS))
    for i, row in enumerate(table.rows):
        pairs = sorted(zip(table.class_counts, row.per_class), key=lambda p: -p[0])
        runs = "1 run" if row.n == 1 else f"mean of {row.n} runs"
        ax.plot([c for c, _ in pairs], [a for _, a in pairs], marker=MARKERS[i % len(MARKERS)],
                linestyle=LINESTYLES[(i // len(MARKERS) + i) % len(LINESTYLES)], markersize=5, linewidth=1.3,
                markevery=(i % step, step), markerfacecolor="none" if i % 2 else None, zorder=3 + i,
                label=_plain(f"{row.label} ({runs})"))
    ax.set_xscale("log")
    lo, hi = min(table.class_counts), max(table.class_counts)
    ax.set_xlim(hi * 1.25, max(lo, 1) / 1.25)  # head on the left
    label_log_axis(ax.xaxis)
    ax.set_xlabel("training images of the class (log scale)")
    ax.set_ylabel(f"class test accuracy (%), {comparison.metric} epoch")
    ax.set_ylim(-2, 102)
    ax.set_title(_plain(table.dataset), pad=18)
    ax.grid(True, which="major", alpha=0.25)
    _mark_groups(ax, table.class_counts, comparison.scheme)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2 if len(table.rows) > 3 else 1,
              frameon=False)


def plot_per_class(comparison: Comparison, path: str | os.PathLike[str]) -> Path:
    """Save one panel per dataset: x = training images of the class (log scale), y = mean
    per-class test accuracy (%) over each method's runs; group boundaries marked."""
    path = Path(path)
    if not path.parent.is_dir():
        raise LtrankError(f"cannot write {path}: folder {path.parent} does not exist")
    plt = _pyplot()
    n = len(comparison.tables)
    rows = max(len(t.rows) for t in comparison.tables)
    legend_lines = rows if rows <= 3 else math.ceil(rows / 2)
    fig, axes = plt.subplots(1, n, figsize=(6.4 * n, 4.1 + 0.2 * legend_lines), squeeze=False)
    for ax, table in zip(axes[0], comparison.tables):
        _panel(ax, table, comparison)
    fig.tight_layout()
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format=(path.suffix.lstrip(".") or "png"),
                                                  bbox_inches="tight", pad_inches=0.15))
    finally:
        plt.close(fig)
    return path
