"""Aggregate run records into thesis-shaped tables (what ``ltrank compare`` shows).

Runs are grouped by config hash (same resolved recipe, any seed); each group becomes one row
with the mean and sample standard deviation (ddof=1) over its runs of Average / Head / Body /
Tail (or Average / Many / Medium / Few), computed from the stored per-class accuracies
(METHOD.md section 2). The thesis reports the LAST epoch (METHOD.md section 3), so that is the
default; ``metric="best"`` uses each run's best epoch instead and says so. Runs that did not
finish are left out, with a note. The text renderers here return strings; the CLI prints.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from ltrank.errors import LtrankError
from ltrank.reference import Anchor, Cell, MethodRow, Reference, dataset_key
from ltrank.results import RunRecord, compute_groups

SCHEME_COLUMNS = {"thirds": ("Average", "Head", "Body", "Tail"), "shots": ("Average", "Many", "Medium", "Few")}
METRICS = {"last": "last epoch", "best": "best epoch"}

#: Method keys (recipe-name suffixes) in the thesis's table order, with their display labels.
METHOD_LABELS = {
    "ce": "CE",
    "focal": "Focal",
    "cbfocal": "CB Focal",
    "ldam": "LDAM",
    "ldam-drw": "LDAM-DRW",
    "drolt": "DRO-LT",
    "ap": "AP",
    "cbdelta": "AP CB Delta",
    "cbdelta-divide": "AP CB Delta divide",
    "cbdelta-progressive": "AP CB Delta progressive",
    "cbprimary": "AP CB Primary",
    "cbprimary-progressive": "AP CB Primary progressive",
}


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
        ref = f"; {self.reference.name}: {self.reference.metric} epoch, mean ± std of 3 runs" if self.reference else ""
        return (
            f"top-1 (%) at the {METRICS[self.metric]}, {self.scheme} groups; "
            f"mean ± sample std over seeds (n runs){ref}"
        )

    def best(self, table: Table) -> dict[str, set[int]]:
        """Per column, the indices of our rows with the highest mean (ties all count)."""
        best: dict[str, set[int]] = {}
        for col in self.columns:
            means = [(i, r.cells[col].mean) for i, r in enumerate(table.rows) if r.cells[col].mean is not None]
            if means:
                top = max(m for _, m in means)
                best[col] = {i for i, m in means if m == top}
        return best


def _infer_key(recipe: dict) -> Optional[str]:
    """The thesis method a resolved recipe runs, from its loss and weighting schedule."""
    loss = recipe.get("loss") or {}
    name, params = loss.get("name"), loss.get("params") or {}
    schedule = (recipe.get("schedule") or {}).get("name", "none")
    progressive = "-progressive" if schedule == "progressive" else ""
    if name == "ap_cb_delta":
        return "cbdelta" + ("-divide" if params.get("mode") == "divide" else "") + progressive
    if name == "ap_cb_primary":
        return "cbprimary" + progressive
    if name == "ldam":
        return {"none": "ldam", "drw": "ldam-drw"}.get(schedule)
    if name == "cb_focal":
        return "cbfocal"
    if schedule != "none":
        return None  # e.g. CE with deferred re-weighting: no thesis row
    return name  # ce, focal, ap, drolt, or e.g. a plugin loss: the loss name is the key


def method_key(record: RunRecord) -> str:
    """The method a run belongs to, used to find reference numbers.

    Read from the resolved recipe's loss and schedule when they are a known combination
    (so ``quickstart`` is ``cbdelta``), else the recipe-name suffix after the dataset
    (``cifar10-ir100-foo`` -> ``foo``), else the recipe name.
    """
    inferred = _infer_key(record.recipe)
    if inferred is not None:
        return inferred
    prefix = dataset_key(record.data.source_name, record.data.imbalance_ratio) + "-"
    name = record.recipe_name
    return name[len(prefix):] if name.startswith(prefix) else name


def _beta_in_use(recipe: dict) -> Optional[float]:
    """The effective-number beta when class weights are in force (a CB loss or a schedule)."""
    loss = recipe.get("loss") or {}
    beta = (loss.get("params") or {}).get("beta")
    if beta is None:
        beta = ((recipe.get("schedule") or {}).get("params") or {}).get("beta")
    weighted = str(loss.get("name", "")).startswith(("cb_", "ap_cb_")) or (recipe.get("schedule") or {}).get(
        "name", "none"
    ) != "none"
    return beta if weighted else None


def method_label(record: RunRecord) -> str:
    """A table label such as ``AP CB Delta (beta 0.99)``."""
    key = method_key(record)
    label = METHOD_LABELS.get(key, record.recipe_name)
    beta = _beta_in_use(record.recipe)
    return f"{label} (beta {beta:g})" if beta is not None else label


def _dataset_of(record: RunRecord) -> tuple[str, str]:
    return record.data.label(), dataset_key(record.data.source_name, record.data.imbalance_ratio)


def _stat(values: Sequence[Optional[float]]) -> Stat:
    present = [v for v in values if v is not None]
    if not present:
        return Stat(None, None, 0)
    mean = statistics.fmean(present)
    std = statistics.stdev(present) if len(present) > 1 else None
    return Stat(mean, std, len(present))


def _groups(metrics, record: RunRecord, scheme: str) -> dict[str, Optional[float]]:
    stored = metrics.groups.get(scheme)
    return stored if stored is not None else compute_groups(metrics.per_class, record.data.class_counts, scheme)


def _row(runs: list[tuple[Path, RunRecord]], scheme: str, metric: str, columns: Sequence[str]) -> Row:
    first = runs[0][1]
    values: dict[str, list[Optional[float]]] = {c: [] for c in columns}
    per_class: list[list[float]] = []
    for _, rec in runs:
        m = rec.final if metric == "last" else rec.best
        groups = _groups(m, rec, scheme)
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


def _order(row: Row) -> tuple[int, str]:
    keys = list(METHOD_LABELS)
    return (keys.index(row.method_key) if row.method_key in keys else len(keys), row.label)


def compare_records(
    records: Sequence[tuple[Path, RunRecord]],
    *,
    scheme: str = "thirds",
    metric: str = "last",
    reference: Optional[Reference] = None,
    allow_mixed: bool = False,
) -> Comparison:
    """Group ``(path, record)`` pairs by dataset and config hash into a :class:`Comparison`."""
    if scheme not in SCHEME_COLUMNS:
        raise LtrankError(f"unknown group scheme {scheme!r}; use 'thirds' or 'shots'")
    if metric not in METRICS:
        raise LtrankError(f"unknown metric {metric!r}; use 'last' or 'best'")
    if not records:
        raise LtrankError("no run records to compare; pass record.json files or folders holding them")
    columns = SCHEME_COLUMNS[scheme]
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
        raise LtrankError(f"none of the {len(records)} run records is a finished run; nothing to compare")

    by_dataset: dict[str, list[tuple[Path, RunRecord]]] = {}
    for path, rec in usable:
        by_dataset.setdefault(_dataset_of(rec)[0], []).append((path, rec))
    if len(by_dataset) > 1 and not allow_mixed:
        listing = ", ".join(f"{name} ({len(runs)} runs)" for name, runs in by_dataset.items())
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
        rows = []
        for group in by_hash.values():
            row = _row(group, scheme, metric, columns)
            repeated = sorted({s for s in row.seeds if row.seeds.count(s) > 1})
            if repeated:
                table_notes.append(f"{row.label}: seed(s) {repeated} appear more than once and are all counted")
            if reference is not None:
                row.reference = reference.row(key, row.method_key)
                row.anchors = reference.anchors_for(key, row.method_key)
                train = group[0][1].recipe.get("train") or {}
                epochs = train.get("epochs")
                # a run started from a trained model (DRO-LT after CE) counts only its own epochs: no note
                if (row.reference or row.anchors) and epochs is not None and epochs != reference.epochs \
                        and not train.get("init_from"):
                    table_notes.append(
                        f"{row.label}: trained {epochs} epochs, the {reference.name} numbers beside it {reference.epochs}"
                    )
            rows.append(row)
        labels = [r.label for r in rows]
        for row in rows:  # same method, different settings: tell the rows apart
            if labels.count(row.label) > 1:
                row.label = f"{row.label} [{row.config_hash[:8]}]"
        rows.sort(key=_order)
        if reference is not None and not any(r.reference or r.anchors for r in rows):
            known = ", ".join(reference.datasets)
            table_notes.append(f"{name}: the {reference.name} reference has no numbers for these runs (it covers {known})")
        tables.append(Table(name, key, list(runs[0][1].data.class_counts), rows, table_notes))
    if reference is not None:
        if scheme != reference.groups:
            notes.append(f"{reference.name} reports {reference.groups} groups only: its other columns are blank")
        if metric != reference.metric:
            notes.append(f"{reference.name} numbers are {METRICS[reference.metric]} accuracies, ours {METRICS[metric]}")
    return Comparison(scheme, metric, columns, tables, reference, notes)


# ---- cell text and the plain-text formats --------------------------------------------------

def _fmt(mean: float, std: Optional[float]) -> str:
    return f"{mean:.2f} ± " + ("-" if std is None else f"{std:.2f}")


def format_stat(stat: Stat) -> str:
    """``74.77 ± 0.09``; a single run ``74.77 ± -``; an empty group ``empty``."""
    return "empty" if stat.mean is None else _fmt(stat.mean, stat.std)


def reference_cell(comparison: Comparison, row: Row, column: str) -> Optional[Cell]:
    """The reference number beside ``row`` in ``column``; None where the reference has none
    (only Average is comparable when our groups differ from the reference's)."""
    ref = comparison.reference
    if row.reference is None or ref is None:
        return None
    if column != "Average" and comparison.scheme != ref.groups:
        return None
    return row.reference.cell(column)


def reference_cells(comparison: Comparison, row: Row) -> dict[str, str]:
    """Cell texts of the reference row beside ``row`` ('' where the reference has no number)."""
    cells = {}
    for col in comparison.columns:
        cell = reference_cell(comparison, row, col)
        cells[col] = "" if cell is None else _fmt(cell.mean, cell.std)
    return cells


def reference_lines(comparison: Comparison, row: Row) -> list[tuple[str, dict[str, str]]]:
    """(label, cells) of the reference rows shown under ``row``: the thesis row, then anchors."""
    lines = []
    if row.reference is not None:
        lines.append((f"  {comparison.reference.name}: {row.reference.label}", reference_cells(comparison, row)))
    for a in row.anchors:
        when = f", {METRICS[a.metric]}" if a.metric else ""
        cells = {c: "" for c in comparison.columns}
        cells["Average"] = f"{a.top1:.2f}"
        lines.append((f"  {a.source}: {a.label}{when}", cells))
    return lines


def to_markdown(comparison: Comparison) -> str:
    """GitHub markdown: one heading and table per dataset; the best mean per column in bold."""
    out = []
    for table in comparison.tables:
        best = comparison.best(table)
        out.append(f"### {table.dataset}\n")
        out.append(f"{comparison.caption}\n")
        out.append("| Method | n | " + " | ".join(comparison.columns) + " |")
        out.append("|---|---:|" + "---:|" * len(comparison.columns))
        for i, row in enumerate(table.rows):
            cells = []
            for col in comparison.columns:
                text = format_stat(row.cells[col])
                cells.append(f"**{text}**" if i in best.get(col, ()) else text)
            out.append(f"| {row.label} | {row.n} | " + " | ".join(cells) + " |")
            for label, ref in reference_lines(comparison, row):
                out.append(f"| *{label.strip()}* | | " + " | ".join(ref[c] for c in comparison.columns) + " |")
        for note in table.notes:
            out.append(f"\n{note}")
        out.append("")
    for note in comparison.notes:
        out.append(f"Note: {note}")
    return "\n".join(out).rstrip() + "\n"


def to_csv(comparison: Comparison) -> str:
    """One line per row (ours and reference), means and stds in separate columns."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    header = ["dataset", "metric", "scheme", "kind", "method", "method_key", "config_hash", "n", "seeds"]
    for col in comparison.columns:
        header += [f"{col}_mean", f"{col}_std"]
    writer.writerow(header)

    def num(x: Optional[float]) -> str:
        return "" if x is None else f"{x:.4f}"

    for table in comparison.tables:
        for row in table.rows:
            line = [table.dataset_key, comparison.metric, comparison.scheme, "ours", row.label, row.method_key,
                    row.config_hash, row.n, " ".join(str(s) for s in row.seeds)]
            for col in comparison.columns:
                line += [num(row.cells[col].mean), num(row.cells[col].std)]
            writer.writerow(line)
            if row.reference is not None and comparison.reference is not None:
                line = [table.dataset_key, comparison.reference.metric, comparison.reference.groups,
                        comparison.reference.name, row.reference.label, row.method_key, "", "", ""]
                for col in comparison.columns:
                    cell = reference_cell(comparison, row, col)
                    line += [num(cell.mean if cell else None), num(cell.std if cell else None)]
                writer.writerow(line)
            for a in row.anchors:
                line = [table.dataset_key, a.metric or "", "", a.source, a.label, row.method_key, "", "", ""]
                for col in comparison.columns:
                    line += [num(a.top1) if col == "Average" else "", ""]
                writer.writerow(line)
    return buf.getvalue()


def to_json_dict(comparison: Comparison) -> dict[str, Any]:
    """Everything, as plain data (per-class means included)."""
    tables = []
    for table in comparison.tables:
        rows = []
        for row in table.rows:
            rows.append({
                "label": row.label,
                "method_key": row.method_key,
                "recipe_name": row.recipe_name,
                "config_hash": row.config_hash,
                "n": row.n,
                "seeds": row.seeds,
                "cells": {c: asdict(s) for c, s in row.cells.items()},
                "per_class_mean": row.per_class,
                "records": row.sources,
                "reference": row.reference.model_dump() if row.reference else None,
                "anchors": [a.model_dump() for a in row.anchors],
            })
        tables.append({"dataset": table.dataset, "dataset_key": table.dataset_key,
                       "class_counts": table.class_counts, "rows": rows, "notes": table.notes})
    return {
        "metric": comparison.metric,
        "scheme": comparison.scheme,
        "columns": list(comparison.columns),
        "caption": comparison.caption,
        "reference": comparison.reference.name if comparison.reference else None,
        "tables": tables,
        "notes": comparison.notes,
    }


def to_json(comparison: Comparison) -> str:
    """:func:`to_json_dict` as indented JSON text."""
    return json.dumps(to_json_dict(comparison), indent=2) + "\n"
