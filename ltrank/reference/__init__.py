"""Published reference numbers shipped with ltrank, for ``ltrank compare --reference``.

``thesis.json`` holds every number of docs/method.md section 7 (the thesis's Tables 4.1-4.12: mean
and std over 3 runs of Average/Head/Body/Tail top-1, null where the thesis gives none) and the
other published anchors with their sources. Rows are keyed by dataset (``cifar10-ir100``) and
method, the method key being the recipe-name suffix (``cifar10-ir100-cbdelta`` -> ``cbdelta``).
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ltrank.errors import LtrankError, did_you_mean

COLUMNS = ("Average", "Head", "Body", "Tail")
AVAILABLE = ("thesis",)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Cell(_Strict):
    """A published mean (and std, when given) in percent."""

    mean: float = Field(..., description="mean top-1 (%)")
    std: Optional[float] = Field(None, ge=0, description="standard deviation over runs (%)")


class MethodRow(_Strict):
    """One method's row of a published table; a missing column is None."""

    label: str = Field(..., description="method name as shown in tables")
    Average: Optional[Cell] = Field(None, description="mean over all classes")
    Head: Optional[Cell] = Field(None, description="head third")
    Body: Optional[Cell] = Field(None, description="body third")
    Tail: Optional[Cell] = Field(None, description="tail third")

    def cell(self, column: str) -> Optional[Cell]:
        """The cell of ``column`` (one of :data:`COLUMNS`)."""
        return getattr(self, column)


class DatasetTable(_Strict):
    """The reference rows for one dataset."""

    title: str = Field(..., description="dataset as the source names it")
    source_name: str = Field(..., description="ltrank data source name, e.g. 'cifar10'")
    imbalance_ratio: float = Field(..., gt=0, description="imbalance ratio")
    num_classes: int = Field(..., gt=0, description="number of classes")
    tables: str = Field(..., description="tables of the source the numbers come from")
    methods: dict[str, MethodRow] = Field(..., description="method key -> row")


class Anchor(_Strict):
    """A single published top-1 from another work."""

    source: str = Field(..., description="where the number was published")
    method: str = Field(..., description="method key")
    label: str = Field(..., description="method name as shown in tables")
    dataset: str = Field(..., description="dataset key, e.g. 'cifar10-ir100'")
    top1: float = Field(..., description="top-1 (%)")
    metric: Optional[str] = Field(None, description="'best' (best epoch), 'last', or None when not stated")


class Reference(_Strict):
    """A reference file: tables per dataset plus anchors."""

    name: str = Field(..., description="reference name used on the command line")
    source: str = Field(..., description="publication the tables come from")
    setting: str = Field(..., description="training setting of the tables")
    epochs: int = Field(..., gt=0, description="training epochs behind the tables")
    metric: str = Field(..., description="'last' or 'best': which epoch the tables report")
    groups: str = Field(..., description="group scheme of Head/Body/Tail")
    anchor_setting: str = Field(..., description="setting and metric conventions of the anchors")
    notes: list[str] = Field(default_factory=list, description="caveats")
    datasets: dict[str, DatasetTable] = Field(..., description="dataset key -> table")
    anchors: list[Anchor] = Field(default_factory=list, description="other published numbers")

    def row(self, dataset: str, method: str) -> Optional[MethodRow]:
        """The row for ``dataset``/``method``, or None."""
        table = self.datasets.get(dataset)
        return None if table is None else table.methods.get(method)

    def anchors_for(self, dataset: str, method: str) -> list[Anchor]:
        """Anchors published for ``dataset``/``method``."""
        return [a for a in self.anchors if a.dataset == dataset and a.method == method]


def dataset_key(source_name: str, imbalance_ratio: float) -> str:
    """The key of a dataset in reference files: ``cifar10`` at IR 100 -> ``cifar10-ir100``."""
    return f"{source_name}-ir{imbalance_ratio:g}"


@lru_cache(maxsize=None)
def load_reference(name: str = "thesis") -> Reference:
    """Load a shipped reference by name (see :data:`AVAILABLE`)."""
    if name not in AVAILABLE:
        raise LtrankError(
            f"unknown reference {name!r}{did_you_mean(name, AVAILABLE)}; available: {', '.join(AVAILABLE)}"
        )
    text = resources.files(__name__).joinpath(f"{name}.json").read_text(encoding="utf-8")
    try:
        return Reference.model_validate(json.loads(text))
    except (json.JSONDecodeError, ValidationError) as exc:  # a packaging bug, not a user error
        raise RuntimeError(f"the shipped reference {name}.json is broken: {exc}") from exc
