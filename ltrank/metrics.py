"""Per-class accuracy and the metrics of one evaluated epoch (docs/method.md section 2).

Per-class accuracy is the source of truth; the group accuracies of every scheme in
:mod:`ltrank.groups` are derived from it and stored beside it, so tables can use any scheme later.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch

from ltrank.groups import GROUP_SCHEMES, group_accuracies
from ltrank.records import Metrics


def per_class_accuracy(preds: torch.Tensor, labels: torch.Tensor, num_classes: int) -> list[float]:
    """Fraction of each class's samples predicted correctly; NaN for a class with no samples."""
    preds, labels = preds.reshape(-1).long().cpu(), labels.reshape(-1).long().cpu()
    if preds.shape != labels.shape:
        raise ValueError(f"preds and labels differ in length: {preds.numel()} vs {labels.numel()}")
    total = torch.bincount(labels, minlength=num_classes).double()
    correct = torch.bincount(labels[preds == labels], minlength=num_classes).double()
    acc = torch.where(total > 0, correct / total.clamp_min(1), torch.full_like(total, float("nan")))
    return acc.tolist()


def make_metrics(
    epoch: int, per_class_acc: Sequence[float], class_counts: Sequence[int], top1: Optional[float] = None
) -> Metrics:
    """Metrics for one epoch, with groups under every scheme, from FRACTIONS in [0, 1].

    ``per_class_acc`` is what :func:`per_class_accuracy` returns; the record stores percentages.
    ``top1`` (a fraction) defaults to the mean per-class accuracy, the plain top-1 on a balanced
    test set; pass the measured one when the test set is not balanced.
    """
    fractions = [float(v) for v in per_class_acc]
    if not fractions or any(not (0.0 <= v <= 1.0) for v in fractions):  # also rejects NaN
        raise ValueError("per-class accuracies must be fractions in [0, 1], one per class (no NaN)")
    per_class = [100.0 * v for v in fractions]
    top1_pct = sum(per_class) / len(per_class) if top1 is None else 100.0 * float(top1)
    groups = {scheme: group_accuracies(per_class, list(class_counts), scheme) for scheme in GROUP_SCHEMES}
    return Metrics(epoch=epoch, top1=top1_pct, per_class=per_class, groups=groups)
