"""Capped passes for smoke runs: fewer images, every class still present.

``train.max_batches_per_epoch`` and ``eval.max_batches`` make a run quick enough to check that
it works. A capped pass must not drop classes: per-class accuracy of a class without test images
is undefined, and DRO-LT's centroid of a class without images would be zero. So a cap takes the
images class by class in turn (the first image of every class, then the second of every class,
...), in dataset order: deterministic, the same on every resume, and never fewer than one image
per class. Numbers measured this way are smoke-run numbers; the run record says so
(:func:`capped_warnings`).
"""

from __future__ import annotations

import torch

from ltrank.recipe import Recipe


def balanced_indices(labels: torch.Tensor, limit: int) -> torch.Tensor:
    """Indices (int64, ascending) of at most ``limit`` items of ``labels`` [N], taken class by
    class in turn in dataset order; at least one item of every class present in ``labels``,
    so the result may exceed ``limit`` by up to the number of classes - 1. ``limit`` >= N
    returns every index."""
    labels = labels.reshape(-1).cpu().long()
    n = labels.numel()
    if limit >= n:
        return torch.arange(n)
    by_class = torch.argsort(labels, stable=True)  # indices grouped by class, dataset order inside
    sorted_labels = labels[by_class]
    starts = torch.searchsorted(sorted_labels, sorted_labels, right=False)
    rank = torch.empty(n, dtype=torch.long)
    rank[by_class] = torch.arange(n) - starts  # position of each item within its class
    classes = int(torch.unique(labels).numel())
    order = torch.argsort(rank * (int(labels.max()) + 1) + labels, stable=True)  # round robin over classes
    return torch.sort(order[: max(limit, classes)]).values


def capped_warnings(recipe: Recipe) -> list[str]:
    """One line per smoke-run cap the recipe sets, for the run record's ``warnings``."""
    warnings = []
    if recipe.train.max_batches_per_epoch:
        warnings.append(
            f"train.max_batches_per_epoch = {recipe.train.max_batches_per_epoch}: every epoch (and a loss's "
            "feature pass) was cut short; a smoke run, not a result"
        )
    if recipe.eval.max_batches:
        warnings.append(
            f"eval.max_batches = {recipe.eval.max_batches}: test accuracies were measured on part of the test "
            f"set ({recipe.eval.max_batches} x {recipe.eval.batch_size} images, at least one per class); "
            "a smoke run, not a result"
        )
    return warnings
