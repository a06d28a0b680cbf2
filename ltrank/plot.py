"""Per-class accuracy against training-set size, one line per method (``ltrank compare --plot``).

matplotlib is the optional ``plot`` extra: imported here, lazily, with a clear error when absent.
The image is written atomically (temp file in the same folder, then ``os.replace``).
"""

from __future__ import annotations

import os
from pathlib import Path

from ltrank.atomic import atomic_write
from ltrank.compare import Comparison
from ltrank.errors import LtrankError


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise LtrankError("--plot needs matplotlib; install it with: pip install 'ltrank[plot]'") from None
    return plt


def plot_per_class(comparison: Comparison, path: str | os.PathLike[str]) -> Path:
    """Save one panel per dataset: x = training images of the class (log scale), y = mean
    per-class test accuracy (%) over each method's runs."""
    path = Path(path)
    if not path.parent.is_dir():
        raise LtrankError(f"cannot write {path}: folder {path.parent} does not exist")
    plt = _pyplot()
    n = len(comparison.tables)
    fig, axes = plt.subplots(1, n, figsize=(6.4 * n, 4.4), squeeze=False)
    for ax, table in zip(axes[0], comparison.tables):
        for row in table.rows:
            pairs = sorted(zip(table.class_counts, row.per_class), key=lambda p: -p[0])
            ax.plot([c for c, _ in pairs], [a for _, a in pairs], marker="o", markersize=3,
                    linewidth=1.2, label=f"{row.label} (n={row.n})")
        ax.set_xscale("log")
        ax.invert_xaxis()
        ax.set_xlabel("training images of the class (log scale)")
        ax.set_ylabel(f"test accuracy (%), {comparison.metric} epoch")
        ax.set_ylim(-2, 102)
        ax.set_title(table.dataset)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format=(path.suffix.lstrip(".") or "png")))
    finally:
        plt.close(fig)
    return path
