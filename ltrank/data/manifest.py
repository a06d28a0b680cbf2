"""Writing split manifests and the class-distribution chart of ``ltrank make-dataset``.

The manifest JSON is canonical (sorted keys, no timestamps, one line per class for the selected
rows), so building the same split twice gives byte-identical files. Files are written
atomically: a temp file in the target folder, then ``os.replace``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ltrank.atomic import atomic_write, atomic_write_text
from ltrank.data.config import DatasetConfig, SplitManifest
from ltrank.errors import LtrankError


def manifest_json(manifest: SplitManifest) -> str:
    """Canonical JSON text of a manifest (trailing newline included)."""
    data = manifest.model_dump(mode="json")
    rows = data.pop("selected_indices")
    text = json.dumps({**data, "selected_indices": "@ROWS@"}, sort_keys=True, indent=2, ensure_ascii=False)
    per_class = ",\n".join("    " + json.dumps(r, separators=(",", ":")) for r in rows)
    return text.replace('"@ROWS@"', "[\n" + per_class + "\n  ]") + "\n"


def split_stem(cfg: DatasetConfig) -> str:
    """File-name stem of a split, e.g. ``cifar10-exp-ir100-seed0`` or ``npz-mine-step-ir10-seed0``."""
    kind, sep, path = cfg.source.partition(":")
    name = f"{kind}-{Path(path).stem or 'data'}" if sep else kind
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
    if cfg.profile == "asis":  # neither the ratio nor the seed plays a part
        return f"{name}-asis"
    return f"{name}-{cfg.profile}-ir{cfg.imbalance_ratio:g}-seed{cfg.seed}"


def write_manifest(manifest: SplitManifest, path: Path) -> Path:
    return atomic_write_text(path, manifest_json(manifest))


def load_manifest(path: Path) -> SplitManifest:
    """Read a manifest back; a problem is one line naming the file."""
    try:
        return SplitManifest.model_validate_json(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LtrankError(f"{path}: not a readable split manifest ({str(exc).splitlines()[0]})") from None


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def plot_class_counts(manifest: SplitManifest, groups: dict[str, list[int]], path: Path) -> Path:
    """Bar chart of training images per class (log scale), coloured by group. Needs matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch
    except ImportError:
        raise LtrankError("the bar chart needs matplotlib; install it with: pip install 'ltrank[plot]'") from None
    counts = manifest.class_counts
    group_of = {c: name for name, members in groups.items() for c in members}
    palette = dict(zip(groups, ("tab:blue", "tab:orange", "tab:red")))
    fig, ax = plt.subplots(figsize=(max(6.4, 0.09 * len(counts) + 2), 4.0))
    ax.bar(range(len(counts)), counts, color=[palette[group_of[c]] for c in range(len(counts))], width=0.85)
    handles = [Patch(color=color, label=f"{name} ({len(groups[name])} classes)") for name, color in palette.items()]
    ax.set_yscale("log")
    from ltrank.plot import label_log_axis

    label_log_axis(ax.yaxis)  # 20, 50, 100, 200, ... rather than only 10^1, 10^2
    ax.set_xlabel("class (label order)")
    ax.set_ylabel("training images (log scale)")
    ax.set_title(
        f"{manifest.source.name}: {manifest.profile} profile, IR {manifest.imbalance_ratio:g}, "
        f"seed {manifest.seed}, {sum(counts):,} images"
    )
    if len(counts) <= 20:
        ax.set_xticks(range(len(counts)), manifest.class_names, rotation=45, ha="right", fontsize=8)
    ax.legend(handles=handles, fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png", metadata={"Software": None}))
    finally:
        plt.close(fig)
