"""``ltrank compare``'s library side: which method a run is (:mod:`.methods`), runs aggregated
into tables (:mod:`.aggregate`), and the tables as text (:mod:`.render`)."""

from ltrank.compare.aggregate import METRICS, Comparison, Row, Stat, Table, compare_records, default_scheme
from ltrank.compare.methods import METHOD_LABELS, method_key, method_label
from ltrank.compare.render import (
    anchor_sources,
    format_stat,
    reference_cell,
    reference_cells,
    reference_lines,
    to_csv,
    to_json,
    to_json_dict,
    to_markdown,
)

__all__ = [
    "METHOD_LABELS", "METRICS", "Comparison", "Row", "Stat", "Table", "anchor_sources", "compare_records", "default_scheme", "format_stat",
    "method_key", "method_label", "reference_cell", "reference_cells", "reference_lines", "to_csv", "to_json",
    "to_json_dict", "to_markdown",
]
