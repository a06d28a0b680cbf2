"""Per-class accuracy and the Head/Body/Tail and shot groups (docs/method.md section 2)."""

from __future__ import annotations

import math

import pytest
import torch

from ltrank.data.longtail import class_counts
from ltrank.errors import LtrankError
from ltrank.groups import group_accuracies, group_classes
from ltrank.metrics import per_class_accuracy


def test_per_class_accuracy_against_a_loop():
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 5, (200,), generator=gen)
    preds = torch.where(torch.rand(200, generator=gen) < 0.6, labels, torch.randint(0, 5, (200,), generator=gen))
    got = per_class_accuracy(preds, labels, 6)
    for c in range(5):
        mask = labels == c
        assert got[c] == pytest.approx((preds[mask] == c).float().mean().item())
    assert math.isnan(got[5])  # a class with no test samples has no accuracy


def test_thirds_on_cifar_sizes():
    c10 = group_classes(class_counts(5000, 10, 100, "exp"), "thirds")
    assert c10 == {"Head": [0, 1, 2, 3], "Body": [4, 5, 6], "Tail": [7, 8, 9]}
    c100 = group_classes(class_counts(500, 100, 100, "exp"), "thirds")
    assert [len(v) for v in c100.values()] == [34, 33, 33]
    assert c100["Head"] == list(range(34)) and c100["Tail"] == list(range(67, 100))


def test_thirds_sort_by_descending_count_and_keep_label_order_on_ties():
    groups = group_classes([5, 50, 50, 1, 20, 50, 3], "thirds")
    # sorted: 1, 2, 5 (50s in label order), 4 (20), 0 (5), 6 (3), 3 (1)
    assert groups == {"Head": [1, 2, 5], "Body": [4, 0], "Tail": [6, 3]}


def test_shots_thresholds_and_empty_few_group():
    counts = class_counts(5000, 10, 100, "exp")  # smallest class 50: no few-shot class
    groups = group_classes(counts, "shots")
    assert groups == {"Many": [0, 1, 2, 3, 4, 5, 6, 7], "Medium": [8, 9], "Few": []}
    assert group_classes([101, 100, 20, 19], "shots") == {"Many": [0], "Medium": [1, 2], "Few": [3]}
    acc = group_accuracies([0.9] * 8 + [0.5, 0.3], counts, "shots")
    assert acc["Few"] is None
    assert acc["Medium"] == pytest.approx(0.4)
    with pytest.raises(LtrankError, match="unknown group scheme"):
        group_classes(counts, "quarters")


def test_thesis_average_is_recovered_from_head_body_tail_with_thirds_sizes():
    # Thesis Table 4.2 (CIFAR-10-LT IR100), CE: Head 82.55, Body 69.68, Tail 55.6, Average 70.60.
    counts = class_counts(5000, 10, 100, "exp")
    per_class = [82.55] * 4 + [69.68] * 3 + [55.6] * 3
    acc = group_accuracies(per_class, counts, "thirds")
    assert acc["Head"] == pytest.approx(82.55) and acc["Tail"] == pytest.approx(55.6)
    assert round(acc["Average"], 2) == 70.60
    # CIFAR-100 sizes 34/33/33: the Average is the size-weighted mean of the group means
    counts100 = class_counts(500, 100, 100, "exp")
    per_class100 = [60.0] * 34 + [40.0] * 33 + [10.0] * 33
    acc100 = group_accuracies(per_class100, counts100, "thirds")
    assert acc100["Average"] == pytest.approx((34 * 60 + 33 * 40 + 33 * 10) / 100)
    assert (acc100["Head"], acc100["Body"], acc100["Tail"]) == pytest.approx((60.0, 40.0, 10.0))


def test_average_is_plain_top1_on_a_balanced_test_set():
    labels = torch.arange(10).repeat_interleave(7)
    preds = labels.clone()
    preds[::3] = (preds[::3] + 1) % 10
    per_class = per_class_accuracy(preds, labels, 10)
    acc = group_accuracies(per_class, class_counts(5000, 10, 100, "exp"))
    assert acc["Average"] == pytest.approx((preds == labels).float().mean().item())
