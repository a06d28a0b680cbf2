"""The thesis tables as runs: table number -> dataset and recipes (``tables.json``, shipped beside ``thesis.json``).

``ltrank reproduce 4.12`` sweeps a table's recipes and compares the runs with the thesis's
numbers (:mod:`ltrank.reference`). The dataset of each table agrees with the ``tables`` field of
``thesis.json``; which rows a table holds is ltrank's reading, stated in the file's notes.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ltrank.errors import LtrankError, did_you_mean


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ThesisTable(_Strict):
    """One thesis table: the dataset it reports and the recipes of its rows."""

    dataset: str = Field(..., description="dataset key of thesis.json, e.g. 'cifar100-ir100'")
    topic: str = Field(..., description="what the table is about")
    recipes: list[str] = Field(..., min_length=1, description="shipped recipe names, one per row")


class TableMap(_Strict):
    """The whole map."""

    name: str = Field(..., description="name of this map")
    source: str = Field(..., description="publication the tables come from")
    notes: list[str] = Field(default_factory=list, description="how the map was made")
    tables: dict[str, ThesisTable] = Field(..., description="table number ('4.12') -> table")


@lru_cache(maxsize=None)
def load_tables() -> TableMap:
    """The shipped table map."""
    text = resources.files(__package__).joinpath("tables.json").read_text(encoding="utf-8")
    try:
        return TableMap.model_validate(json.loads(text))
    except (json.JSONDecodeError, ValidationError) as exc:  # a packaging bug, not a user error
        raise RuntimeError(f"the shipped tables.json is broken: {exc}") from exc


def get_table(number: str) -> ThesisTable:
    """The table ``number`` ('4.12', also 'Table 4.12'); an unknown number is a one-line :class:`LtrankError`."""
    tables = load_tables().tables
    key = number.strip().lower().removeprefix("table").strip()
    if key not in tables:
        raise LtrankError(f"unknown thesis table {number!r}{did_you_mean(key, tables)}; "
                          f"the tables are {', '.join(tables)} (see 'ltrank reproduce --list')")
    return tables[key]
