"""Balanced Softmax and logit-adjusted CE against a float64 per-sample, per-class loop."""

from __future__ import annotations

import math
from importlib.metadata import EntryPoint

import pytest
import torch

from ltrank.errors import LtrankError
from ltrank.registry import Registry, Spec
from ltrank_logit_adjust import BALANCED_SOFTMAX, LOGIT_ADJUSTED
from ltrank_logit_adjust.losses import BalancedSoftmaxLoss, LogitAdjustedLoss, logit_adjusted_cross_entropy

COUNTS = [400, 120, 30, 9, 2]


def reference(logits: torch.Tensor, targets: torch.Tensor, counts: list[int], tau: float, use_counts: bool):
    """mean_b [ log sum_c exp(z_bc + a_c) - (z_by + a_y) ], a_c = log n_c or tau * log(n_c / N)."""
    total_n = sum(counts)
    adj = [math.log(n) if use_counts else tau * math.log(n / total_n) for n in counts]
    loss = logits.new_zeros(())
    for b in range(logits.shape[0]):
        y = int(targets[b])
        lse = torch.log(sum(torch.exp(logits[b, c] + adj[c]) for c in range(logits.shape[1])))
        loss = loss + lse - (logits[b, y] + adj[y])
    return loss / logits.shape[0]


def _compare(module, logits, targets, tau, use_counts):
    x = logits.clone().requires_grad_(True)
    r = logits.clone().requires_grad_(True)
    got = logit_adjusted_cross_entropy(x, targets, module.shift.double())
    want = reference(r, targets, COUNTS, tau, use_counts)
    assert abs(got.item() - want.item()) < 1e-6  # the module's shift buffer is float32
    # exact float64 check with a float64 shift computed the same way as the reference
    n = torch.tensor(COUNTS, dtype=torch.float64)
    shift64 = torch.log(n) if use_counts else tau * torch.log(n / n.sum())
    x64 = logits.clone().requires_grad_(True)
    got64 = logit_adjusted_cross_entropy(x64, targets, shift64)
    assert abs(got64.item() - want.item()) < 1e-9
    g_got = torch.autograd.grad(got64, x64)[0]
    g_want = torch.autograd.grad(want, r)[0]
    assert torch.allclose(g_got, g_want, rtol=0, atol=1e-9)


@pytest.mark.parametrize(
    "logits,targets",
    [
        (3 * torch.randn(8, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64),
         torch.tensor([0, 0, 1, 4, 0, 1, 2, 0])),  # class 3 absent
        (torch.tensor([[0.3, -2.0, 1.0, 0.0, 5.0]], dtype=torch.float64), torch.tensor([4])),  # B = 1
        (torch.zeros(3, 5, dtype=torch.float64), torch.tensor([2, 2, 2])),  # ties, one-class batch
    ],
)
def test_balanced_softmax_matches_loop(logits, targets):
    _compare(BalancedSoftmaxLoss(COUNTS), logits, targets, 1.0, True)


@pytest.mark.parametrize("tau", [0.0, 0.5, 1.0, 2.0])
def test_logit_adjusted_matches_loop(tau):
    g = torch.Generator().manual_seed(1)
    logits = 2 * torch.randn(6, 5, generator=g, dtype=torch.float64)
    targets = torch.tensor([4, 3, 0, 0, 1, 2])
    _compare(LogitAdjustedLoss(COUNTS, tau=tau), logits, targets, tau, False)


def test_tau_one_equals_balanced_softmax_and_tau_zero_is_plain_ce():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(10, 5, generator=g)
    targets = torch.randint(5, (10,), generator=g)
    bs = BalancedSoftmaxLoss(COUNTS)(logits, targets)
    la = LogitAdjustedLoss(COUNTS, tau=1.0)(logits, targets)
    assert abs(bs.item() - la.item()) < 1e-5
    ce = torch.nn.functional.cross_entropy(logits, targets)
    assert abs(LogitAdjustedLoss(COUNTS, tau=0.0)(logits, targets).item() - ce.item()) < 1e-6


def test_extreme_logits_are_finite():
    logits = torch.tensor([[1e4, -1e4, 0.0, 0.0, 0.0]], requires_grad=True)
    loss = BalancedSoftmaxLoss(COUNTS)(logits, torch.tensor([1]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


def test_empty_class_is_a_clear_error():
    with pytest.raises(LtrankError, match="at least one training image"):
        BalancedSoftmaxLoss([10, 0, 3])


def test_entry_points_load_through_an_ltrank_registry():
    reg = Registry("loss", "ltrank.losses.v1", context=("class_counts",))
    reg.discover([
        EntryPoint("balanced_softmax", "ltrank_logit_adjust:BALANCED_SOFTMAX", "ltrank.losses.v1"),
        EntryPoint("logit_adjusted", "ltrank_logit_adjust:LOGIT_ADJUSTED", "ltrank.losses.v1"),
    ])
    assert reg.names() == ["balanced_softmax", "logit_adjusted"]
    assert isinstance(BALANCED_SOFTMAX, Spec) and isinstance(LOGIT_ADJUSTED, Spec)
    loss = reg.build("logit_adjusted", class_counts=COUNTS, tau=0.5)
    assert isinstance(loss, LogitAdjustedLoss) and loss.tau == 0.5
    with pytest.raises(LtrankError, match="tau"):
        reg.build("logit_adjusted", class_counts=COUNTS, tau=-1.0)
    assert isinstance(reg.build("balanced_softmax", class_counts=COUNTS), BalancedSoftmaxLoss)
