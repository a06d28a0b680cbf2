"""Long-tailed subset construction (docs/method.md section 1, the "Cao" construction).

Pure functions: :func:`class_counts` gives the per-class target sizes of a profile, and
:func:`select_indices` picks that many training rows per class with one
``numpy.random.RandomState(seed)`` whose stream runs across the classes in label order.
Profile ``asis`` instead keeps every row (:func:`all_indices`) and records
:func:`measured_ratio`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ltrank.errors import LtrankError

#: How the rows of a class are shuffled; recorded in every split manifest.
RULE_CLASS_ROWS = "shuffle-class-rows"
RULE_SOURCE_RANKS = "shuffle-source-ranks"
RULE_KEEP_ALL = "keep-all"


def class_counts(n_max: int, num_classes: int, imbalance_ratio: float, profile: str) -> list[int]:
    """Target training images per class, class 0 the largest.

    ``exp``: ``int(n_max * (1/IR) ** (c / (C - 1)))`` (truncation, as the reference code).
    ``step``: the first ``C // 2`` classes keep ``n_max``, the others get ``int(n_max / IR)``
    (for odd C the extra class is a minority class; the reference code only handles even C).
    """
    if num_classes < 2:
        raise LtrankError(f"a long-tailed dataset needs at least 2 classes, the source has {num_classes}")
    if imbalance_ratio < 1:
        raise LtrankError(f"imbalance ratio must be >= 1, got {imbalance_ratio}")
    factor = 1.0 / imbalance_ratio
    if profile == "exp":
        counts = [int(n_max * factor ** (c / (num_classes - 1.0))) for c in range(num_classes)]
    elif profile == "step":
        half = num_classes // 2
        counts = [n_max] * half + [int(n_max * factor)] * (num_classes - half)
    else:
        raise LtrankError(f"unknown long-tail profile {profile!r}; use 'exp' or 'step'")
    if min(counts) < 1:
        raise LtrankError(
            f"imbalance ratio {imbalance_ratio:g} leaves class {counts.index(min(counts))} with 0 images "
            f"(largest class {n_max}); use a ratio of at most {n_max}"
        )
    return counts


def all_indices(labels: np.ndarray, num_classes: int) -> list[np.ndarray]:
    """Profile ``asis``: every training row of each class, in source order."""
    labels = np.asarray(labels)
    return [np.flatnonzero(labels == c) for c in range(num_classes)]


def measured_ratio(counts: Sequence[int]) -> float:
    """n_max / n_min over the classes that have images (what ``asis`` records as its ratio)."""
    present = [n for n in counts if n > 0]
    return max(present) / min(present)


def select_indices(
    labels: np.ndarray,
    counts: Sequence[int],
    seed: int,
    class_names: Sequence[str],
    source_ranks: np.ndarray | None = None,
    full_class_size: int | None = None,
) -> list[np.ndarray]:
    """Rows of the training set kept for each class, in the order the reference keeps them.

    Without ``source_ranks`` (a full training set, or any source in its own order): for each
    class c in label order, shuffle the class's row indices (ascending) with the shared
    RandomState and keep the first ``counts[c]``. On full CIFAR this is exactly the reference.

    With ``source_ranks`` (a *pool*: rows carry their within-class position in an original set
    of ``full_class_size`` images per class): shuffle the positions ``0..full_class_size-1``
    exactly as the reference shuffles the full class, then keep, in that shuffled order, the
    first ``counts[c]`` positions that the pool holds. The RNG stream is the reference's, and
    the kept rows include every image of the reference subset that the pool holds; the rest
    are the next ones in the reference's shuffled order.
    """
    rng = np.random.RandomState(seed)
    labels = np.asarray(labels)
    kept: list[np.ndarray] = []
    for c, n_c in enumerate(counts):
        rows = np.flatnonzero(labels == c)
        if n_c > len(rows):
            # A larger ratio asks for fewer images, except from classes the profile keeps at n_max,
            # and no ratio helps a class with no image at all.
            if len(rows) == 0:
                fix = "no imbalance ratio can fix that: add training images of this class, or remove the class"
            elif n_c < max(counts):
                fix = "use a larger imbalance ratio or a source with more images of this class"
            else:
                fix = "this profile keeps the class at n_max; use the 'exp' profile or a source with more images of this class"
            raise LtrankError(
                f"class {c} ({class_names[c]!r}) needs {n_c} training images but the source holds {len(rows)}; {fix}"
            )
        if source_ranks is None:
            rng.shuffle(rows)
            kept.append(rows[:n_c].copy())
            continue
        assert full_class_size is not None
        row_at_rank = np.full(full_class_size, -1, dtype=np.int64)
        row_at_rank[source_ranks[rows]] = rows
        order = rng.permutation(full_class_size)
        available = row_at_rank[order]
        kept.append(available[available >= 0][:n_c].copy())
    return kept
