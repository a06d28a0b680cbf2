"""Cross-entropy against a float64 loop reference, incl. PyTorch's weighted-mean convention."""

from __future__ import annotations

import math

import torch

from ltrank.catalog import LOSSES, SCHEDULES


def _reference(logits, targets, weights):
    total, norm = 0.0, 0.0
    for b in range(logits.shape[0]):
        row = [float(v) for v in logits[b]]
        top = max(row)
        lse = top + math.log(sum(math.exp(v - top) for v in row))
        w = float(weights[targets[b]])
        total += w * (lse - row[int(targets[b])])
        norm += w
    return total / norm


def _grad_reference(logits, targets, weights):
    grad = torch.zeros_like(logits)
    norm = sum(float(weights[t]) for t in targets)
    for b in range(logits.shape[0]):
        p = torch.softmax(logits[b], 0)
        onehot = torch.zeros_like(p)
        onehot[targets[b]] = 1
        grad[b] = float(weights[targets[b]]) * (p - onehot) / norm
    return grad


def test_plain_and_weighted_ce_match_loop_reference():
    torch.manual_seed(0)
    counts = [50, 20, 5, 1]
    logits = (torch.randn(9, 4, dtype=torch.float64) * 4).requires_grad_()
    targets = torch.tensor([0, 0, 1, 2, 3, 0, 1, 1, 0])
    plain = LOSSES.build("ce", class_counts=counts)
    value = plain(logits, targets)
    assert math.isclose(value.item(), _reference(logits.detach(), targets, [1.0] * 4), rel_tol=1e-12)
    weighted = LOSSES.build("ce", class_counts=counts, weighted=True, beta=0.99)
    w = weighted.class_weights
    loss = weighted(logits, targets)
    assert math.isclose(loss.item(), _reference(logits.detach(), targets, w), rel_tol=1e-12)
    loss.backward()
    assert torch.allclose(logits.grad, _grad_reference(logits.detach(), targets, w), atol=1e-12)


def test_drw_schedule_turns_weights_on():
    counts = [100, 10, 1]
    loss = LOSSES.build("ce", class_counts=counts)
    drw = SCHEDULES.build("drw", start_epoch=3)
    loss.set_class_weights(drw.weights(2, 4, loss.target_weights))
    assert torch.equal(loss.class_weights, torch.ones(3))
    loss.set_class_weights(drw.weights(3, 4, loss.target_weights))
    assert torch.equal(loss.class_weights, loss.target_weights)
