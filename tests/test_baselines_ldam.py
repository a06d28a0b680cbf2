"""LDAM / LDAM-DRW and the weighted-mean CE convention (docs/method.md section 6) against loops."""

from __future__ import annotations

import math

import pytest
import torch

from ltrank.errors import LtrankError
from ltrank.losses.functional import ldam_loss, ldam_margins
from ltrank.catalog import LOSSES, SCHEDULES

CIFAR10_IR100 = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]


def weighted_ce_reference(rows: torch.Tensor, targets: torch.Tensor, weights=None) -> torch.Tensor:
    """sum_b w_{y_b} (-log softmax(rows_b)[y_b]) / sum_b w_{y_b}, one sample at a time."""
    num, den = rows.new_zeros(()), rows.new_zeros(())
    for b in range(rows.shape[0]):
        y = int(targets[b])
        lse = torch.log(sum(torch.exp(rows[b, c]) for c in range(rows.shape[1])))
        w = 1.0 if weights is None else weights[y]
        num = num + w * (lse - rows[b, y])
        den = den + w
    return num / den


def ldam_reference(cos, targets, counts, max_m, s, weights=None):
    n_min = min(counts)
    rows = []
    for b in range(cos.shape[0]):
        row = []
        for c in range(cos.shape[1]):
            margin = max_m * (n_min / counts[c]) ** 0.25 if c == int(targets[b]) else 0.0
            row.append(s * (cos[b, c] - margin))
        rows.append(torch.stack(row))
    return weighted_ce_reference(torch.stack(rows), targets, weights)


def test_margins_equal_the_closed_form_and_rarest_gets_max_m():
    for max_m in (0.5, 0.3):
        m = ldam_margins(CIFAR10_IR100, max_m)
        want = [max_m * (50 / n) ** 0.25 for n in CIFAR10_IR100]
        assert max(abs(a - b) for a, b in zip(m.tolist(), want)) < 1e-15
        assert m[-1].item() == max_m
    # unsorted counts: the rarest class wherever it sits gets max_m
    m = ldam_margins([10, 1000, 1], 0.5)
    assert m[2].item() == 0.5 and abs(m[0].item() - 0.5 * 0.1**0.25) < 1e-15


def test_margins_reject_empty_classes():
    with pytest.raises(LtrankError, match="at least one training image"):
        ldam_margins([10, 0, 3])


@pytest.mark.parametrize("weighted", [False, True])
def test_ldam_matches_loop_reference(weighted):
    counts = [300, 90, 20, 4, 1]
    g = torch.Generator().manual_seed(4)
    cos = (2 * torch.rand(8, 5, generator=g, dtype=torch.float64) - 1).requires_grad_(True)
    targets = torch.tensor([0, 0, 4, 1, 3, 0, 1, 4])  # class 2 absent
    weights = torch.tensor([0.2, 0.5, 1.0, 1.3, 2.0], dtype=torch.float64) if weighted else None
    got = ldam_loss(cos, targets, class_counts=counts, max_m=0.5, s=30.0, class_weights=weights)
    ref_in = cos.detach().clone().requires_grad_(True)
    want = ldam_reference(ref_in, targets, counts, 0.5, 30.0, weights)
    assert abs(got.item() - want.item()) < 1e-9
    (g_got,) = torch.autograd.grad(got, cos)
    (g_want,) = torch.autograd.grad(want, ref_in)
    assert torch.allclose(g_got, g_want, rtol=0, atol=1e-9)


@pytest.mark.parametrize(
    "cos,targets",
    [
        (torch.tensor([[0.9, -0.1, 0.3]], dtype=torch.float64), torch.tensor([1])),  # B = 1
        (torch.full((3, 3), 0.25, dtype=torch.float64), torch.tensor([2, 2, 2])),  # ties, one class
        (torch.tensor([[1.0, -1.0, -1.0], [-1.0, 1.0, 1.0]], dtype=torch.float64), torch.tensor([0, 2])),  # extremes
    ],
)
def test_ldam_edge_cases(cos, targets):
    counts = [100, 10, 1]
    cos = cos.clone().requires_grad_(True)
    got = ldam_loss(cos, targets, class_counts=counts)
    ref_in = cos.detach().clone().requires_grad_(True)
    want = ldam_reference(ref_in, targets, counts, 0.5, 30.0)
    assert abs(got.item() - want.item()) < 1e-9
    assert torch.allclose(torch.autograd.grad(got, cos)[0], torch.autograd.grad(want, ref_in)[0], rtol=0, atol=1e-9)


def test_ldam_module_is_unweighted_until_drw_switches_on():
    counts = CIFAR10_IR100
    loss = LOSSES.build("ldam", class_counts=counts)
    assert torch.equal(loss.class_weights, torch.ones(10))
    g = torch.Generator().manual_seed(5)
    cos = torch.rand(16, 10, generator=g, dtype=torch.float64) * 2 - 1
    targets = torch.randint(10, (16,), generator=g)
    plain = ldam_reference(cos, targets, counts, 0.5, 30.0).item()
    assert abs(loss(cos, targets).item() - plain) < 1e-5  # module buffers are float32
    drw = SCHEDULES.build("drw")
    loss.set_class_weights(drw.weights(160, 200, loss.target_weights))
    assert abs(loss(cos, targets).item() - plain) < 1e-5
    loss.set_class_weights(drw.weights(161, 200, loss.target_weights))
    beta = 0.9999
    raw = [(1 - beta) / (1 - beta**n) for n in counts]
    w = torch.tensor([r * 10 / sum(raw) for r in raw], dtype=torch.float64)
    reweighted = ldam_reference(cos, targets, counts, 0.5, 30.0, w).item()
    assert abs(loss(cos, targets).item() - reweighted) < 1e-4 * max(1.0, abs(reweighted))
    assert abs(reweighted - plain) > 1e-3  # DRW really changes the loss


def test_ce_weighted_mean_convention_matches_loop():
    counts = [200, 50, 10, 2]
    g = torch.Generator().manual_seed(6)
    logits = 4 * torch.randn(9, 4, generator=g, dtype=torch.float64)
    targets = torch.tensor([0, 0, 0, 1, 3, 1, 0, 3, 0])
    ce = LOSSES.build("ce", class_counts=counts, weighted=True, beta=0.99)
    w = ce.class_weights.to(torch.float64)
    want = weighted_ce_reference(logits, targets, w).item()
    assert abs(ce(logits, targets).item() - want) < 1e-5
    # the weighted mean divides by sum_b w_{y_b}, not by B: the two differ here
    divided_by_b = want * sum(w[int(t)].item() for t in targets) / len(targets)
    assert abs(want - divided_by_b) > 1e-2
    plain = LOSSES.build("ce", class_counts=counts)
    assert abs(plain(logits, targets).item() - weighted_ce_reference(logits, targets).item()) < 1e-5
    assert math.isfinite(want)


def test_cosine_head_class_vectors_start_at_unit_norm_like_the_reference():
    # LDAM's NormedLinear: uniform(-1, 1) then each class vector renormalised to norm 1. The
    # logits do not see the norm, but the SGD step on a vector's direction scales as 1/norm^2.
    from ltrank.catalog import BACKBONES

    torch.manual_seed(0)
    head = BACKBONES.build("resnet32", num_classes=10, head="cosine").head
    norms = head.weight.detach().norm(dim=1)
    assert torch.allclose(norms, torch.ones(10), atol=1e-6)
    gram = head.weight.detach() @ head.weight.detach().t()
    assert (gram - torch.eye(10)).abs().max() < 0.9  # random directions, no two classes alike


def test_functional_signature_is_the_documented_one():
    # issue 4: ldam_loss(logits, targets, *, class_counts, max_m=0.5, s=30.0, class_weights=None)
    import inspect

    params = inspect.signature(ldam_loss).parameters
    assert list(params)[:2] == ["logits", "targets"]
    assert {k: params[k].default for k in ("max_m", "s", "class_weights")} == {"max_m": 0.5, "s": 30.0, "class_weights": None}
    assert all(params[k].kind is inspect.Parameter.KEYWORD_ONLY for k in ("class_counts", "max_m", "s", "class_weights"))
