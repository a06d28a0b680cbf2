"""The fault kinds of issue 9 item 5, for every registered loss (built-ins and installed plugins).

A non-finite input must give a non-finite loss (so a divergence check on the loss sees it) and
must not raise; float16 logits with a loss scaled by GradScaler's initial 65536 must get finite
gradients equal to the scaled float64 gradient.
"""

from __future__ import annotations

import math

import pytest
import torch

from ltrank.catalog import LOSSES
from ltrank.registry import NEEDS_FEATURES

COUNTS = [60, 30, 15, 8, 4]
SCALE = 65536.0  # torch.amp.GradScaler's default init_scale


def _build(name: str) -> torch.nn.Module:
    loss = LOSSES.build(name, class_counts=COUNTS)
    if hasattr(loss, "centroids"):  # DRO-LT: centroids come from an epoch-start pass
        loss.centroids = torch.randn(len(COUNTS), 6, generator=torch.Generator().manual_seed(1))
    return loss


def _call(name: str, loss: torch.nn.Module, logits: torch.Tensor, targets: torch.Tensor,
          features: torch.Tensor) -> torch.Tensor:
    if LOSSES.get(name).has(NEEDS_FEATURES):
        return loss(logits, targets, features=features)
    return loss(logits, targets)


def _batch(seed: int, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.rand(10, len(COUNTS), generator=g) * 2 - 1).to(dtype)  # cosines too, for LDAM
    targets = torch.randint(0, len(COUNTS), (10,), generator=g)
    features = torch.randn(10, 6, generator=g)
    return logits, targets, features


@pytest.mark.parametrize("name", LOSSES.names())
def test_a_nan_logit_gives_a_nan_loss(name):
    logits, targets, features = _batch(0)
    logits[2, (int(targets[2]) + 1) % len(COUNTS)] = math.nan
    z = logits.requires_grad_(True)
    loss = _call(name, _build(name), z, targets, features)
    assert math.isnan(loss.item()), f"{name}: {loss.item()}"
    loss.backward()  # no exception on the way back either


@pytest.mark.parametrize("name", LOSSES.names())
@pytest.mark.parametrize("bad", [math.inf, -math.inf], ids=repr)
@pytest.mark.parametrize("on", ["positive", "negative"])
def test_an_infinite_logit_never_gives_a_finite_loss_with_non_finite_gradients(name, bad, on):
    """A finite loss (e.g. focal with +inf on the true class: its limit, 0) has finite gradients;
    otherwise the loss itself is not finite, so a check on the loss value sees the divergence."""
    logits, targets, features = _batch(3)
    logits[2, int(targets[2]) if on == "positive" else (int(targets[2]) + 1) % len(COUNTS)] = bad
    z = logits.requires_grad_(True)
    loss = _call(name, _build(name), z, targets, features)
    loss.backward()
    if math.isfinite(loss.item()):
        assert torch.isfinite(z.grad).all(), f"{name}: finite loss {loss.item()} with non-finite gradients"
    if name.startswith("ap"):
        assert math.isnan(loss.item())  # the AP family: any non-finite logit gives NaN


@pytest.mark.parametrize("name", [n for n in LOSSES.names() if LOSSES.get(n).has(NEEDS_FEATURES)])
def test_a_non_finite_feature_gives_a_non_finite_loss(name):
    logits, targets, features = _batch(1)
    features[4, 0] = math.nan
    assert math.isnan(_call(name, _build(name), logits, targets, features).item())


@pytest.mark.parametrize("name", LOSSES.names())
def test_fp16_logits_with_a_scaled_loss_get_finite_correctly_scaled_gradients(name):
    """Where the exact scaled gradient fits in float16 it is finite and right; where it does not
    (LDAM: s / B = 3, times 65536) it is inf, which GradScaler detects, skipping the step."""
    logits, targets, features = _batch(2, torch.float16)
    loss_fn = _build(name)
    z16 = logits.clone().requires_grad_(True)
    (_call(name, loss_fn, z16, targets, features) * SCALE).backward()
    z32 = logits.float().requires_grad_(True)
    _call(name, loss_fn, z32, targets, features).backward()
    want = (z32.grad.double() * SCALE).half()  # the scaled exact gradient, rounded once to float16
    assert z16.grad.dtype == torch.float16 and not torch.isnan(z16.grad).any(), name
    assert torch.isfinite(want).any(), name  # the comparison below checks finite values too
    assert torch.allclose(z16.grad.double(), want.double(), rtol=2e-3, atol=SCALE * 1e-6), name
