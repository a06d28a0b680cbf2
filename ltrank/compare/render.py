"""Plain-text renderings of a :class:`~ltrank.compare.aggregate.Comparison`: markdown, CSV, JSON,
and the cell texts that every rendering (the CLI's rich table included) shares. They return
strings; the CLI prints."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from typing import Any, Optional

from ltrank.compare.aggregate import METRICS, Comparison, Row, Stat
from ltrank.reference import Cell


def _fmt(mean: float, std: Optional[float]) -> str:
    return f"{mean:.2f}" if std is None else f"{mean:.2f} ± {std:.2f}"


def format_stat(stat: Stat) -> str:
    """``74.77 ± 0.09``; a single run ``74.77`` (no spread to show: the row's n says 1); an
    empty group ``empty``. Two decimals, for display only: JSON and CSV keep more."""
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


def anchor_sources(comparison: Comparison) -> list[str]:
    """The publications of the anchors shown, in order of first appearance: footnote ``[i]`` is
    ``anchor_sources(...)[i - 1]``."""
    return list(dict.fromkeys(a.source for t in comparison.tables for r in t.rows for a in r.anchors))


def reference_lines(comparison: Comparison, row: Row, footnotes: Optional[list[str]] = None
                    ) -> list[tuple[str, dict[str, str]]]:
    """(label, cells) of the reference rows shown under ``row``: the thesis row, then anchors.

    An anchor's label names its publication in full, or, given ``footnotes`` (from
    :func:`anchor_sources`), by its footnote number, which keeps narrow tables narrow.
    """
    lines = []
    if row.reference is not None:
        lines.append((f"  {comparison.reference.name}: {row.reference.label}", reference_cells(comparison, row)))
    for a in row.anchors:
        when = f", {METRICS[a.metric]}" if a.metric else ""
        cells = {c: "" for c in comparison.columns}
        cells["Average"] = f"{a.top1:.2f}"
        source = a.source if footnotes is None else f"[{footnotes.index(a.source) + 1}]"
        lines.append((f"  {source}: {a.label}{when}", cells))
    return lines


def to_markdown(comparison: Comparison) -> str:
    """GitHub markdown: one heading and table per dataset; the best mean per column in bold."""
    out = []
    for table in comparison.tables:
        best = comparison.best(table)
        out.append(f"### {table.dataset}\n")
        out.append(f"{comparison.caption}. {comparison.legend}.\n")
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
        "legend": comparison.legend,
        "reference": comparison.reference.name if comparison.reference else None,
        "tables": tables,
        "notes": comparison.notes,
    }


def to_json(comparison: Comparison) -> str:
    """:func:`to_json_dict` as indented JSON text."""
    return json.dumps(to_json_dict(comparison), indent=2) + "\n"
