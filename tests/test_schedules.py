"""Effective-number weights and weighting schedules against closed forms (docs/method.md section 4)."""

from __future__ import annotations

import math

import pytest
import torch

from ltrank.catalog import SCHEDULES
from ltrank.losses import class_balanced_weights

CIFAR10_IR100 = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]


def _closed_form(counts, beta):
    raw = [(1 - beta) / (1 - beta**n) for n in counts]
    return [r * len(counts) / sum(raw) for r in raw]


@pytest.mark.parametrize("beta", [0.9, 0.99, 0.999, 0.9999])
def test_cb_weights_closed_form_and_sum(beta):
    w = class_balanced_weights(CIFAR10_IR100, beta)
    assert w.dtype == torch.float32 and w.shape == (10,)
    assert torch.allclose(w.double(), torch.tensor(_closed_form(CIFAR10_IR100, beta), dtype=torch.float64), rtol=1e-6)
    assert math.isclose(float(w.sum()), 10.0, rel_tol=1e-6)
    assert torch.all(w[1:] >= w[:-1])  # rarer class, larger weight


def test_cb_weights_values_quoted_in_method():
    # docs/method.md section 5: beta 0.99 -> head x0.78, rarest x1.98; 0.9999 -> x0.05 and x3.99
    w = class_balanced_weights(CIFAR10_IR100, 0.99)
    assert round(float(w[0]), 2) == 0.78 and round(float(w[-1]), 2) == 1.98
    w = class_balanced_weights(CIFAR10_IR100, 0.9999)
    assert round(float(w[0]), 2) == 0.05 and round(float(w[-1]), 2) == 3.99


def test_cb_weights_bad_input():
    with pytest.raises(ValueError):
        class_balanced_weights(CIFAR10_IR100, 1.0)
    with pytest.raises(ValueError):
        class_balanced_weights([], 0.9)
    assert torch.allclose(class_balanced_weights([5, 3, 1], 0.0), torch.ones(3))


def _target():
    return class_balanced_weights(CIFAR10_IR100, 0.99)


def test_none_and_fixed():
    target = _target()
    assert torch.equal(SCHEDULES.build("none").weights(7, 200, target), torch.ones(10))
    for t in (1, 100, 200):
        assert torch.equal(SCHEDULES.build("fixed").weights(t, 200, target), target)


def test_progressive_endpoints_and_midpoint():
    target = _target()
    prog = SCHEDULES.build("progressive")
    assert torch.allclose(prog.weights(0, 200, target), torch.ones(10))
    assert torch.allclose(prog.weights(200, 200, target), target)
    mid = prog.weights(50, 200, target)
    assert torch.allclose(mid, 0.75 * torch.ones(10) + 0.25 * target)
    assert math.isclose(float(mid.sum()), 10.0, rel_tol=1e-6)  # a blend of two weight sets summing to C


def test_drw_switches_exactly_at_161_and_survives_long_runs():
    target = _target()
    drw = SCHEDULES.build("drw")
    assert torch.equal(drw.weights(160, 200, target), torch.ones(10))
    assert torch.equal(drw.weights(161, 200, target), target)
    assert torch.equal(drw.weights(200, 200, target), target)
    assert torch.equal(drw.weights(999, 1000, target), target)  # the reference's epoch // 160 would overflow
    assert torch.equal(SCHEDULES.build("drw", start_epoch=3).weights(2, 5, target), torch.ones(10))


def test_epoch_out_of_range_is_rejected():
    with pytest.raises(ValueError):
        SCHEDULES.build("fixed").weights(201, 200, _target())
