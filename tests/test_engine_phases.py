"""The learning rate per epoch (docs/method.md section 3) and the phases of staged recipes."""

from __future__ import annotations

import pytest

from ltrank.engine.phases import Phase, lr_at, phase_at, phases
from ltrank.recipe import StageConfig, TrainConfig

PROTOCOL = TrainConfig()  # the thesis defaults: lr 0.1, warm-up 5 from lr/3, x0.01 at 160 and 180


@pytest.mark.parametrize("epoch,expected", [
    (1, 0.1 / 3),  # warm-up starts at lr/3
    (3, 0.1 * (1 / 3 + (2 / 3) * 0.5)),  # halfway through the linear warm-up
    (5, 0.1),  # warm-up reaches lr at its last epoch
    (6, 0.1),
    (159, 0.1),
    (160, 0.1 * 0.01),  # the milestone epoch already uses the decayed rate
    (179, 1e-3),
    (180, 1e-5),
    (200, 1e-5),
])
def test_protocol_learning_rate(epoch, expected):
    assert lr_at(epoch, PROTOCOL) == pytest.approx(expected, rel=1e-12)


def test_warmup_is_linear_and_increasing():
    values = [lr_at(e, PROTOCOL) for e in range(1, 6)]
    steps = [b - a for a, b in zip(values, values[1:])]
    assert all(s == pytest.approx(0.1 * (2 / 3) / 4) for s in steps)


def test_no_warmup_and_single_epoch_warmup_start_at_lr():
    assert lr_at(1, TrainConfig(warmup_epochs=0)) == 0.1
    assert lr_at(1, TrainConfig(warmup_epochs=1)) == 0.1


def test_epochs_are_one_indexed():
    with pytest.raises(ValueError):
        lr_at(0, PROTOCOL)
    with pytest.raises(ValueError):
        lr_at(201, PROTOCOL)


def test_stages_are_phases_with_constant_learning_rates():
    cfg = TrainConfig(epochs=5, stages=[StageConfig(epochs=3, lr=0.005, weight_decay=1e-4, trainable="encoder"),
                                        StageConfig(epochs=2, lr=0.01, weight_decay=1e-4, trainable="head")])
    assert [(p.first_epoch, p.last_epoch) for p in phases(cfg)] == [(1, 3), (4, 5)]
    assert [lr_at(e, cfg) for e in range(1, 6)] == [0.005, 0.005, 0.005, 0.01, 0.01]
    assert [phase_at(e, cfg).index for e in range(1, 6)] == [0, 0, 0, 1, 1]
    assert phases(PROTOCOL) == [Phase(0, 1, 200, None)]  # no stages: one protocol phase over the whole run
