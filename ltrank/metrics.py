"""Per-class accuracy and Head/Body/Tail (or Many/Medium/Few) groups (METHOD.md section 2)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ltrank.data.config import SHOT_GROUP_KINDS, source_kind
from ltrank.errors import LtrankError

GROUP_SCHEMES: tuple[str, ...] = ("thirds", "shots")
#: Shot thresholds of the OLTR / DRO-LT / RIDE convention: many > 100, medium 20..100, few < 20.
MANY_SHOT_ABOVE = 100
FEW_SHOT_BELOW = 20


def per_class_accuracy(preds: torch.Tensor, labels: torch.Tensor, num_classes: int) -> list[float]:
    """Fraction of each class's samples predicted correctly; NaN for a class with no samples."""
    preds, labels = preds.reshape(-1).long().cpu(), labels.reshape(-1).long().cpu()
    if preds.shape != labels.shape:
        raise ValueError(f"preds and labels differ in length: {preds.numel()} vs {labels.numel()}")
    total = torch.bincount(labels, minlength=num_classes).double()
    correct = torch.bincount(labels[preds == labels], minlength=num_classes).double()
    acc = torch.where(total > 0, correct / total.clamp_min(1), torch.full_like(total, float("nan")))
    return acc.tolist()


def group_classes(class_counts: Sequence[int], scheme: str = "thirds") -> dict[str, list[int]]:
    """Class indices per group, each group sorted by descending training count.

    ``thirds``: classes sorted by descending count (stable: ties keep label order), split with
    ``numpy.array_split`` into Head / Body / Tail (the remainder goes to the head: 4/3/3, 34/33/33).
    ``shots``: Many (n > 100), Medium (20 <= n <= 100), Few (n < 20); a group may be empty.
    """
    counts = np.asarray(class_counts)
    ranked = np.argsort(-counts, kind="stable")
    if scheme == "thirds":
        parts = np.array_split(ranked, 3)
        return {name: part.tolist() for name, part in zip(("Head", "Body", "Tail"), parts)}
    if scheme == "shots":
        return {
            "Many": [int(c) for c in ranked if counts[c] > MANY_SHOT_ABOVE],
            "Medium": [int(c) for c in ranked if FEW_SHOT_BELOW <= counts[c] <= MANY_SHOT_ABOVE],
            "Few": [int(c) for c in ranked if counts[c] < FEW_SHOT_BELOW],
        }
    raise LtrankError(f"unknown group scheme {scheme!r}; use 'thirds' or 'shots'")


def default_group_scheme(source: str) -> str:
    """The groups shown by default for a ``data.source``: ``shots`` (Many / Medium / Few) for the
    large long-tailed benchmarks and split lists, as their papers report; ``thirds`` otherwise
    (the thesis's Head / Body / Tail on CIFAR)."""
    return "shots" if source_kind(source) in SHOT_GROUP_KINDS else "thirds"


def group_accuracies(
    per_class_acc: Sequence[float], class_counts: Sequence[int], scheme: str = "thirds"
) -> dict[str, float | None]:
    """Mean per-class accuracy of each group (None for an empty group) and ``Average`` over all
    classes (= top-1 on a balanced test set)."""
    if len(per_class_acc) != len(class_counts):
        raise ValueError(f"{len(per_class_acc)} accuracies for {len(class_counts)} classes")
    acc = np.asarray(per_class_acc, dtype=np.float64)
    out: dict[str, float | None] = {
        name: (float(acc[members].mean()) if members else None)
        for name, members in group_classes(class_counts, scheme).items()
    }
    out["Average"] = float(acc.mean())
    return out
