"""Aggregate run records into thesis-shaped tables (what ``ltrank compare`` shows).

Runs are grouped by config hash (same resolved recipe, any seed); each group becomes one row
with the mean and sample standard deviation (ddof=1) over its runs of Average and the groups of
a scheme (:mod:`ltrank.groups`), computed from the stored per-class accuracies (docs/method.md
section 2). The thesis reports the LAST epoch (docs/method.md section 3), so that is the default;
``metric="best"`` uses each run's best epoch instead and says so. Runs that did not finish are
left out, with a note.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ltrank.compare.methods import METHOD_LABELS, STEP_LABELS, method_key, method_label
from ltrank.errors import LtrankError
from ltrank.groups import get_scheme
from ltrank.reference import Anchor, MethodRow, Reference, dataset_key
from ltrank.records import RunRecord
from ltrank.text import count, plural

METRICS = {"last": "last epoch", "best": "best epoch"}


@dataclass(frozen=True)
class Stat:
    """Mean and sample std over runs; ``std`` is None for a single run, ``mean`` None for an empty group."""

    mean: Optional[float]
    std: Optional[float]
    n: int


@dataclass
class Row:
    """One method (one config hash) aggregated over its runs."""

    label: str
    method_key: str
    recipe_name: str
    config_hash: str
    seeds: list[int]
    cells: dict[str, Stat]
    per_class: list[float]  # mean per-class accuracy over the runs, for plots
    sources: list[str]  # record paths
    reference: Optional[MethodRow] = None
    anchors: list[Anchor] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.seeds)


@dataclass
class Table:
    """All rows of one dataset."""

    dataset: str  # display label, e.g. "cifar10 IR100"
    dataset_key: str  # reference key, e.g. "cifar10-ir100"
    class_counts: list[int]
    rows: list[Row]
    notes: list[str] = field(default_factory=list)


@dataclass
class Comparison:
    """The result of comparing a set of records."""

    scheme: str
    metric: str
    columns: tuple[str, ...]
    tables: list[Table]
    reference: Optional[Reference] = None
    notes: list[str] = field(default_factory=list)  # e.g. runs left out

    @property
    def caption(self) -> str:
        """What the numbers are, in one line."""
        ref = f"; {self.reference.name}: {self.reference.metric} epoch, mean ± std of 3 runs" if self.reference else ""
        return (
            f"top-1 (%) at the {METRICS[self.metric]}; mean ± sample std over the n runs of a row "
            f"(one run: its value){ref}"
        )

    @property
    def legend(self) -> str:
        """What the group columns mean, in one line (``ltrank.groups``)."""
        return get_scheme(self.scheme).summary

    def best(self, table: Table) -> dict[str, set[int]]:
        """Per column, the indices of our rows with the highest mean (ties all count).

        Only a choice among several rows says something: a table of one row, or a column where
        every row ties, has no best (nothing is bold).
        """
        best: dict[str, set[int]] = {}
        for col in self.columns:
            means = [(i, r.cells[col].mean) for i, r in enumerate(table.rows) if r.cells[col].mean is not None]
            if len(means) < 2:
                continue
            top = max(m for _, m in means)
            winners = {i for i, m in means if m == top}
            if len(winners) < len(means):
                best[col] = winners
        return best


def _dataset_of(record: RunRecord) -> tuple[str, str]:
    return record.data.label(), dataset_key(record.data.source_name, record.data.imbalance_ratio)


def _stat(values: Sequence[Optional[float]]) -> Stat:
    present = [v for v in values if v is not None]
    if not present:
        return Stat(None, None, 0)
    mean = statistics.fmean(present)
    std = statistics.stdev(present) if len(present) > 1 else None
    return Stat(mean, std, len(present))


def _row(runs: list[tuple[Path, RunRecord]], scheme: str, metric: str, columns: Sequence[str]) -> Row:
    first = runs[0][1]
    values: dict[str, list[Optional[float]]] = {c: [] for c in columns}
    per_class: list[list[float]] = []
    for _, rec in runs:
        m = rec.final if metric == "last" else rec.best
        groups = m.group(scheme, rec.data.class_counts)
        for c in columns:
            values[c].append(groups.get(c))
        per_class.append(m.per_class)
    mean_pc = [statistics.fmean(v) for v in zip(*per_class)]
    return Row(
        label=method_label(first),
        method_key=method_key(first),
        recipe_name=first.recipe_name,
        config_hash=first.config_hash,
        seeds=[rec.seed for _, rec in runs],
        cells={c: _stat(values[c]) for c in columns},
        per_class=mean_pc,
        sources=[str(p) for p, _ in runs],
    )


def _tell_apart(rows: Sequence[Row]) -> None:
    """Rows of one method with different settings get their config hash: ``AP [dd07246d]``."""
    labels = [r.label for r in rows]
    for row in rows:
        if labels.count(row.label) > 1:
            row.label = f"{row.label} [{row.config_hash[:8]}]"


#: A run this many times shorter than the reference's budget only demonstrates the path.
DEMO_BUDGET_FACTOR = 10


def _row_notes(row: Row, first: RunRecord, reference: Optional[Reference]) -> list[str]:
    """What a reader must know about one row, each note naming the row (its final label)."""
    notes = []
    repeated = sorted({s for s in row.seeds if row.seeds.count(s) > 1})
    if repeated:
        seeds = ", ".join(str(s) for s in repeated)
        notes.append(f"{row.label}: {'seed' if len(repeated) == 1 else 'seeds'} {seeds} "
                     f"{'appears' if len(repeated) == 1 else 'appear'} more than once; every run is counted")
    train = first.recipe.get("train") or {}
    epochs = train.get("epochs")
    # a run started from a trained model (DRO-LT after CE) counts only its own epochs: no note
    if reference is not None and (row.reference or row.anchors) and epochs is not None \
            and epochs != reference.epochs and not train.get("init_from"):
        note = f"{row.label}: trained {plural(epochs, 'epoch')}, the {reference.name} numbers beside it {reference.epochs}"
        if epochs * DEMO_BUDGET_FACTOR <= reference.epochs:
            note += "; a run this short demonstrates the path, not the method"
        notes.append(note)
    caps = [f"{key} = {value}" for key, value in (
        ("train.max_batches_per_epoch", train.get("max_batches_per_epoch")),
        ("eval.max_batches", (first.recipe.get("eval") or {}).get("max_batches"))) if value]
    if caps:
        notes.append(f"{row.label}: a smoke run ({', '.join(caps)}): its numbers are not a result")
    return notes


def _order(row: Row) -> tuple[int, list[int], str]:
    """Thesis order; a re-balanced run (key ``ce+crt``) after the method it started from, its steps
    in the order of :data:`~ltrank.compare.methods.STEP_LABELS`."""
    keys, steps = list(METHOD_LABELS), list(STEP_LABELS)
    base, *after = row.method_key.split("+")
    return (keys.index(base) if base in keys else len(keys),
            [steps.index(s) if s in steps else len(steps) for s in after], row.label)


def default_scheme(records: Iterable[RunRecord]) -> str:
    """The groups the runs' recipes ask to be shown (``eval.groups``), ``thirds`` when they differ."""
    asked = {(rec.recipe.get("eval") or {}).get("groups", "thirds") for rec in records}
    return asked.pop() if len(asked) == 1 else "thirds"


def compare_records(
    records: Sequence[tuple[Path, RunRecord]],
    *,
    scheme: str = "thirds",
    metric: str = "last",
    reference: Optional[Reference] = None,
    allow_mixed: bool = False,
) -> Comparison:
    """Group ``(path, record)`` pairs by dataset and config hash into a :class:`Comparison`."""
    if metric not in METRICS:
        raise LtrankError(f"unknown metric {metric!r}; use 'last' or 'best'")
    if not records:
        raise LtrankError("no run records to compare; pass record.json files or folders holding them")
    columns = get_scheme(scheme).columns
    notes: list[str] = []
    usable: list[tuple[Path, RunRecord]] = []
    for path, rec in records:
        chosen = rec.final if metric == "last" else rec.best
        if rec.status != "finished":
            notes.append(f"left out {path}: run {rec.status}")
        elif chosen is None:
            notes.append(f"left out {path}: no {METRICS[metric]} metrics recorded")
        else:
            usable.append((path, rec))
    if not usable:
        what = "the run record is not" if len(records) == 1 else f"none of the {count(len(records))} run records is"
        raise LtrankError(f"{what} a finished run; nothing to compare")

    by_dataset: dict[str, list[tuple[Path, RunRecord]]] = {}
    for path, rec in usable:
        by_dataset.setdefault(_dataset_of(rec)[0], []).append((path, rec))
    if len(by_dataset) > 1 and not allow_mixed:
        listing = ", ".join(f"{name} ({plural(len(runs), 'run')})" for name, runs in by_dataset.items())
        raise LtrankError(
            f"the runs use different datasets: {listing}; compare one dataset at a time "
            "or pass --allow-mixed for one table per dataset"
        )

    tables = []
    for name, runs in by_dataset.items():
        key = _dataset_of(runs[0][1])[1]
        table_notes: list[str] = []
        counts = {tuple(rec.data.class_counts) for _, rec in runs}
        if len(counts) > 1:
            table_notes.append(f"{name}: runs were trained on different class counts; per-class plots use the first")
        prints = {rec.data.fingerprint for _, rec in runs}
        if len(prints) > 1:
            table_notes.append(f"{name}: runs used {len(prints)} different data fingerprints (different source files)")
        by_hash: dict[str, list[tuple[Path, RunRecord]]] = {}
        for path, rec in runs:
            by_hash.setdefault(rec.config_hash, []).append((path, rec))
        rows: list[tuple[Row, RunRecord]] = []
        for group in by_hash.values():
            row = _row(group, scheme, metric, columns)
            if reference is not None:
                row.reference = reference.row(key, row.method_key)
                row.anchors = reference.anchors_for(key, row.method_key)
            rows.append((row, group[0][1]))
        _tell_apart([row for row, _ in rows])
        rows.sort(key=lambda pair: _order(pair[0]))
        for row, first in rows:
            table_notes.extend(_row_notes(row, first, reference))
        table_notes.extend(f"the runs' data: {note}"
                           for note in dict.fromkeys(rec.data.note for _, rec in runs if rec.data.note))
        if reference is not None and not any(r.reference or r.anchors for r, _ in rows):
            known = ", ".join(reference.datasets)
            table_notes.append(f"{name}: the {reference.name} reference has no numbers for these runs (it covers {known})")
        tables.append(Table(name, key, list(runs[0][1].data.class_counts), [r for r, _ in rows], table_notes))
    if reference is not None:
        if scheme != reference.groups:
            notes.append(f"{reference.name} reports {reference.groups} groups only: its other columns are blank")
        if metric != reference.metric:
            notes.append(f"{reference.name} numbers are {METRICS[reference.metric]} accuracies, ours {METRICS[metric]}")
    return Comparison(scheme, metric, columns, tables, reference, notes)
