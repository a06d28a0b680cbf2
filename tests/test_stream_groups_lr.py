"""Many / Medium / Few as the large sources' default groups (exact boundaries), and the cosine
learning-rate schedule of the large-dataset recipes."""

from __future__ import annotations

import math

import pytest
import torch

from ltrank.engine.phases import cosine_lr, scheduled_lr
from ltrank.engine.phases import protocol_lr
from ltrank.groups import default_group_scheme, group_accuracies, group_classes
from ltrank.recipe import TrainConfig


def test_shot_boundaries_at_exactly_20_and_100():
    counts = [19, 20, 21, 99, 100, 101, 1280, 5]
    groups = group_classes(counts, "shots")
    assert groups == {"Many": [6, 5], "Medium": [4, 3, 2, 1], "Few": [0, 7]}
    acc = group_accuracies([0.0, 1.0, 1.0, 1.0, 0.5, 0.25, 0.75, 0.5], counts, "shots")
    assert acc["Many"] == pytest.approx(0.5) and acc["Medium"] == pytest.approx(0.875)
    assert acc["Few"] == pytest.approx(0.25)


@pytest.mark.parametrize("source, scheme", [
    ("imagenet_lt:/d", "shots"), ("places_lt:/d", "shots"), ("inat2018:/d", "shots"),
    ("splitfile:a.txt,b.txt", "shots"), ("cifar10", "thirds"), ("cifar100", "thirds"),
    ("npz:/x.npz", "thirds"), ("folder:/pets", "thirds"),
])
def test_default_group_scheme_per_source(source, scheme):
    assert default_group_scheme(source) == scheme


def _reference_cosine(epoch, lr, epochs, warmup):
    """Written out: after the warm-up, lr/2 * (1 + cos(pi * t / T)), t = 0 at the first epoch after it."""
    t, span = epoch - warmup - 1, epochs - warmup
    return lr / 2 * (1 + math.cos(math.pi * t / span))


def test_cosine_matches_the_formula_and_pytorchs_scheduler():
    cfg = TrainConfig(epochs=90, lr=0.1, warmup_epochs=0, lr_schedule="cosine", milestones=[])
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.1)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=90, eta_min=0.0)
    for epoch in range(1, 91):
        assert cosine_lr(epoch, cfg) == pytest.approx(_reference_cosine(epoch, 0.1, 90, 0), abs=1e-15)
        assert cosine_lr(epoch, cfg) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9, abs=1e-15)
        opt.step()
        scheduler.step()
    assert cosine_lr(1, cfg) == 0.1 and cosine_lr(46, cfg) == pytest.approx(0.05)
    assert 0 < cosine_lr(90, cfg) < 1e-4


def test_cosine_warms_up_like_the_protocol_then_decays():
    cfg = TrainConfig(epochs=20, lr=0.2, warmup_epochs=5, lr_schedule="cosine")
    for epoch in range(1, 6):
        assert cosine_lr(epoch, cfg) == protocol_lr(epoch, cfg)
    assert cosine_lr(6, cfg) == pytest.approx(0.2)
    for epoch in range(6, 21):
        assert cosine_lr(epoch, cfg) == pytest.approx(_reference_cosine(epoch, 0.2, 20, 5))
    rates = [cosine_lr(e, cfg) for e in range(6, 21)]
    assert rates == sorted(rates, reverse=True)
    with pytest.raises(ValueError, match="1-indexed"):
        cosine_lr(0, cfg)


def test_scheduled_lr_dispatches_on_lr_schedule():
    step = TrainConfig(epochs=200)
    cosine = step.model_copy(update={"lr_schedule": "cosine"})
    assert [scheduled_lr(e, step) for e in (1, 100, 170)] == [protocol_lr(e, step) for e in (1, 100, 170)]
    assert scheduled_lr(170, cosine) == cosine_lr(170, cosine) != protocol_lr(170, cosine)
