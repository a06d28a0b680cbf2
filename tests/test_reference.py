"""The shipped thesis numbers (docs/method.md section 7): structure, spot values, and internal consistency."""

from __future__ import annotations

import numpy as np
import pytest

from ltrank.errors import LtrankError
from ltrank.reference import COLUMNS, dataset_key, load_reference

REF = load_reference("thesis")
DATASETS = ("cifar10-ir50", "cifar10-ir100", "cifar100-ir50", "cifar100-ir100")
METHODS = ("ce", "focal", "cbfocal", "drolt", "ldam-drw", "ap", "cbdelta", "cbdelta-divide",
           "cbdelta-progressive", "cbprimary")
AVERAGE_ONLY = ("cbfocal", "drolt")  # the thesis copied these averages from another work


def _complete_rows():
    for ds in DATASETS:
        for method, row in REF.datasets[ds].methods.items():
            if all(row.cell(c) is not None for c in COLUMNS):
                yield pytest.param(ds, method, id=f"{ds}-{method}")


def test_every_dataset_and_method_of_section_7_is_present():
    assert set(REF.datasets) == set(DATASETS)
    for ds in DATASETS:
        assert set(REF.datasets[ds].methods) == set(METHODS), ds


def test_average_only_rows_have_no_groups_and_others_are_complete():
    for ds in DATASETS:
        for method, row in REF.datasets[ds].methods.items():
            assert row.Average is not None and row.Average.std is not None
            groups_present = [row.cell(c) is not None for c in ("Head", "Body", "Tail")]
            assert groups_present == [method not in AVERAGE_ONLY] * 3, (ds, method)


@pytest.mark.parametrize(("ds", "method"), list(_complete_rows()))
def test_average_equals_thirds_weighted_groups(ds, method):
    """Average = class-weighted mean of Head/Body/Tail with np.array_split thirds (docs/method.md section 2).

    Every complete row satisfies this to 0.02 (the thesis rounds to 0.01), which also checks
    the transcription: a mistyped digit in any of the four numbers would break it."""
    table = REF.datasets[ds]
    sizes = [len(part) for part in np.array_split(np.arange(table.num_classes), 3)]
    row = table.methods[method]
    groups = [row.Head.mean, row.Body.mean, row.Tail.mean]
    weighted = sum(n * g for n, g in zip(sizes, groups)) / table.num_classes
    assert weighted == pytest.approx(row.Average.mean, abs=0.02)


def test_spot_values_typed_from_method_md():
    ce = REF.row("cifar10-ir100", "ce")
    assert (ce.Average.mean, ce.Head.mean, ce.Body.mean, ce.Tail.mean) == (70.6, 82.55, 69.68, 55.6)
    assert ce.Head.std == 4.66
    cbd = REF.row("cifar100-ir100", "cbdelta")
    assert (cbd.Average.mean, cbd.Average.std, cbd.Tail.mean, cbd.Tail.std) == (44.10, 0.18, 22.34, 0.23)
    assert REF.row("cifar100-ir50", "drolt").Average.mean == 53.6
    assert REF.row("cifar10-ir50", "cbprimary").Tail.mean == 67.80


def test_anchors_carry_their_source():
    assert len(REF.anchors) == 8
    bs = REF.anchors_for("cifar100-ir100", "balanced_softmax")
    assert [a.top1 for a in bs] == [42.99] and "Bag of Tricks" in bs[0].source
    ldam = REF.anchors_for("cifar10-ir100", "ldam-drw")
    assert sorted(a.top1 for a in ldam) == [77.03, 77.73]


def test_dataset_key_and_unknown_reference():
    assert dataset_key("cifar10", 100.0) == "cifar10-ir100"
    assert dataset_key("cifar100", 50) == "cifar100-ir50"
    with pytest.raises(LtrankError, match="unknown reference 'thesys'.*did you mean 'thesis'"):
        load_reference("thesys")
