"""Class groups, declared once (docs/method.md section 2): every command, record and table uses these.

- ``thirds``: Head / Body / Tail, equal thirds of the classes by training frequency with the
  remainder going to the head (``numpy.array_split``: CIFAR-10 4/3/3, CIFAR-100 34/33/33). The
  thesis's tables use it; it is the default for sources that ltrank makes long-tailed.
- ``shots``: Many (> 100 training images) / Medium (20-100) / Few (< 20), the convention of
  OLTR, DRO-LT, RIDE and every ImageNet-LT / Places-LT / iNaturalist paper; the default for
  sources that come long-tailed. A group may be empty (Few on CIFAR-10-LT): it is shown as
  empty, never as 0.

Group accuracy is the mean of the per-class accuracies of the group; ``Average`` is the mean over
all classes (plain top-1 on a balanced test set).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Optional

import numpy as np

from ltrank.errors import LtrankError, did_you_mean

SchemeName = Literal["thirds", "shots"]
AVERAGE = "Average"
#: Shot thresholds of the OLTR / DRO-LT / RIDE convention: many > 100, medium 20..100, few < 20.
MANY_SHOT_ABOVE = 100
FEW_SHOT_BELOW = 20


@dataclass(frozen=True)
class GroupScheme:
    """A named way to split classes into groups by training count."""

    name: str
    groups: tuple[str, ...]
    summary: str  # one line for tables and help texts

    @property
    def columns(self) -> tuple[str, ...]:
        """Table columns: ``Average`` then the groups."""
        return (AVERAGE, *self.groups)


SCHEMES: dict[str, GroupScheme] = {
    "thirds": GroupScheme(
        "thirds", ("Head", "Body", "Tail"),
        "Head/Body/Tail = equal thirds of the classes by training count (remainder to Head), as the thesis",
    ),
    "shots": GroupScheme(
        "shots", ("Many", "Medium", "Few"),
        f"Many/Medium/Few = more than {MANY_SHOT_ABOVE} / {FEW_SHOT_BELOW}-{MANY_SHOT_ABOVE} / "
        f"fewer than {FEW_SHOT_BELOW} training images per class",
    ),
}
GROUP_SCHEMES: tuple[str, ...] = tuple(SCHEMES)


def get_scheme(name: str) -> GroupScheme:
    """The scheme called ``name``; a one-line :class:`LtrankError` for an unknown name."""
    try:
        return SCHEMES[name]
    except KeyError:
        raise LtrankError(
            f"unknown group scheme {name!r}{did_you_mean(name, SCHEMES)}; use {' or '.join(SCHEMES)}"
        ) from None


def default_group_scheme(source: str) -> str:
    """The groups shown by default for a ``data.source``: ``shots`` (Many / Medium / Few) for the
    large long-tailed benchmarks and split lists, as their papers report; ``thirds`` otherwise
    (the thesis's Head / Body / Tail on CIFAR)."""
    from ltrank.data.config import SHOT_GROUP_KINDS, source_kind  # lazily: the data package loads torch

    return "shots" if source_kind(source) in SHOT_GROUP_KINDS else "thirds"


def group_classes(class_counts: Sequence[int], scheme: str = "thirds") -> dict[str, list[int]]:
    """Class indices per group, each group sorted by descending training count (ties: label order)."""
    get_scheme(scheme)
    counts = np.asarray(class_counts)
    ranked = np.argsort(-counts, kind="stable")
    if scheme == "thirds":
        parts = np.array_split(ranked, 3)
        return {name: part.tolist() for name, part in zip(SCHEMES["thirds"].groups, parts)}
    return {
        "Many": [int(c) for c in ranked if counts[c] > MANY_SHOT_ABOVE],
        "Medium": [int(c) for c in ranked if FEW_SHOT_BELOW <= counts[c] <= MANY_SHOT_ABOVE],
        "Few": [int(c) for c in ranked if counts[c] < FEW_SHOT_BELOW],
    }


def group_accuracies(
    per_class_acc: Sequence[float], class_counts: Sequence[int], scheme: str = "thirds"
) -> dict[str, Optional[float]]:
    """Mean per-class accuracy of each group (None for an empty group) and ``Average``.

    Works on fractions or percentages alike (it only averages). Raises :class:`LtrankError` when
    the two sequences differ in length (metrics and data that do not belong together).
    """
    if len(per_class_acc) != len(class_counts):
        raise LtrankError(
            f"{len(per_class_acc)} per-class accuracies but {len(class_counts)} class counts; "
            "the metrics and the data do not belong together"
        )
    acc = np.asarray(per_class_acc, dtype=np.float64)
    out: dict[str, Optional[float]] = {
        name: (float(acc[members].mean()) if members else None)
        for name, members in group_classes(class_counts, scheme).items()
    }
    out[AVERAGE] = float(acc.mean())
    return out
