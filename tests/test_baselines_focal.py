"""Focal and CB Focal (docs/method.md section 6) against a float64 per-sample, per-class loop."""

from __future__ import annotations

import math

import pytest
import torch

from ltrank.losses.functional import focal_loss
from ltrank.catalog import LOSSES


def focal_reference(logits: torch.Tensor, targets: torch.Tensor, gamma: float, weights=None) -> torch.Tensor:
    """Sum over b, c of w_{y_b} * BCE(z, t) * ((1-p) t + p (1-t))^gamma, divided by B."""
    B, C = logits.shape
    total = logits.new_zeros(())
    for b in range(B):
        y = int(targets[b])
        row = logits.new_zeros(())
        for c in range(C):
            z = logits[b, c]
            t = 1.0 if c == y else 0.0
            p = 1.0 / (1.0 + torch.exp(-z))
            bce = -(t * torch.log(p) + (1.0 - t) * torch.log(1.0 - p))
            row = row + bce * ((1.0 - p) * t + p * (1.0 - t)) ** gamma
        total = total + (row if weights is None else weights[y] * row)
    return total / B


def cb_weights_closed_form(counts: list[int], beta: float) -> list[float]:
    raw = [(1.0 - beta) / (1.0 - beta**n) for n in counts]
    return [w * len(counts) / sum(raw) for w in raw]


def _check(logits, targets, gamma, weights=None):
    logits = logits.clone().requires_grad_(True)
    ref_in = logits.detach().clone().requires_grad_(True)
    got = focal_loss(logits, targets, gamma=gamma, class_weights=weights)
    want = focal_reference(ref_in, targets, gamma, weights)
    (g_got,) = torch.autograd.grad(got, logits)
    (g_want,) = torch.autograd.grad(want, ref_in)
    assert got.dtype == torch.float64
    assert abs(got.item() - want.item()) < 1e-9
    assert torch.allclose(g_got, g_want, rtol=0, atol=1e-9)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0])
def test_focal_matches_loop_reference(gamma):
    g = torch.Generator().manual_seed(1)
    logits = 3 * torch.randn(7, 5, generator=g, dtype=torch.float64)
    targets = torch.tensor([0, 1, 1, 3, 0, 0, 1])  # classes 2 and 4 absent
    _check(logits, targets, gamma)


@pytest.mark.parametrize(
    "logits,targets",
    [
        (torch.tensor([[0.3, -1.2, 2.0]], dtype=torch.float64), torch.tensor([2])),  # B = 1
        (torch.zeros(4, 3, dtype=torch.float64), torch.tensor([1, 1, 1, 1])),  # ties, one-class batch
        (torch.tensor([[1.0, 1.0, -1.0], [0.5, 0.5, 0.5]], dtype=torch.float64), torch.tensor([0, 2])),  # ties
    ],
)
def test_focal_edge_cases(logits, targets):
    _check(logits, targets, 2.0)
    w = torch.tensor([0.5, 1.0, 1.5], dtype=torch.float64)
    _check(logits, targets, 1.0, w)


def test_focal_extreme_logits_stay_finite_and_match_limits():
    # True class at +60 and others at -60: every entry costs ~ e^-60 * (e^-60)^gamma, i.e. ~0.
    z = torch.tensor([[60.0, -60.0, -60.0]], dtype=torch.float64, requires_grad=True)
    loss = focal_loss(z, torch.tensor([0]), gamma=2.0)
    assert 0.0 <= loss.item() < 1e-50
    # True class at -60 (confidently wrong): BCE = softplus(60) = 60 + log(1 + e^-60), factor ~1.
    z2 = torch.tensor([[-60.0, -60.0]], dtype=torch.float64, requires_grad=True)
    loss2 = focal_loss(z2, torch.tensor([0]), gamma=2.0)
    assert abs(loss2.item() - (60.0 + math.log1p(math.exp(-60.0)))) < 1e-9
    loss2.backward()
    assert torch.isfinite(z2.grad).all()
    # float32 with huge logits: finite value and gradient
    z3 = torch.tensor([[1e4, -1e4], [-1e4, 1e4]], requires_grad=True)
    loss3 = focal_loss(z3, torch.tensor([1, 1]), gamma=2.0)
    loss3.backward()
    assert torch.isfinite(loss3) and torch.isfinite(z3.grad).all()
    # sample 0 is wrong on both entries (1e4 each), sample 1 right on both (~0); divided by B = 2
    assert abs(loss3.item() - 2e4 / 2) < 1.0


def test_cb_weights_scale_rows_exactly_as_the_closed_form():
    counts = [500, 120, 30, 5]
    beta = 0.99
    w = cb_weights_closed_form(counts, beta)
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(6, 4, generator=g, dtype=torch.float64)
    targets = torch.tensor([0, 3, 2, 0, 1, 3])
    rows = [focal_loss(logits[b : b + 1], targets[b : b + 1], gamma=1.0).item() for b in range(6)]
    expected = sum(w[int(targets[b])] * rows[b] for b in range(6)) / 6
    module = LOSSES.build("cb_focal", class_counts=counts, beta=beta, gamma=1.0)
    assert abs(module(logits, targets).item() - expected) < 1e-5  # module weights are float32
    weights64 = torch.tensor(w, dtype=torch.float64)
    assert abs(focal_loss(logits, targets, gamma=1.0, class_weights=weights64).item() - expected) < 1e-12
    # A schedule handing in all-ones weights turns CB Focal into plain focal.
    module.set_class_weights(torch.ones(4))
    assert abs(module(logits, targets).item() - sum(rows) / 6) < 1e-6


def test_plain_focal_module_is_unweighted_with_gamma_two():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(5, 3, generator=g, dtype=torch.float64)
    targets = torch.tensor([0, 1, 2, 2, 0])
    module = LOSSES.build("focal", class_counts=[100, 10, 1])
    assert abs(module(logits, targets).item() - focal_reference(logits, targets, 2.0).item()) < 1e-9
