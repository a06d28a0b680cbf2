"""Learning rate per epoch (docs/method.md section 3) and the training phases of a recipe.

Epochs are 1-indexed. Without ``[[train.stages]]`` the whole run is one phase with the
recipe's ``train.lr_schedule``: ``"step"`` (the protocol: linear warm-up from
``lr * warmup_start_factor`` at epoch 1 to ``lr`` at epoch ``warmup_epochs``, then ``lr``
multiplied by ``gamma`` at each milestone epoch, the milestone epoch itself already using the
lower rate) or ``"cosine"`` (the same warm-up, then half-cosine decay to 0; Kang et al., ICLR
2020). With stages, each stage is a phase with a constant learning rate (the DRO-LT procedure,
docs/method.md section 6) or, with ``lr_schedule = "cosine"``, one annealed per epoch (decoupled
training, docs/recipes.md). A post-hoc stage is a phase of 0 epochs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ltrank.rebalance.schedule import cosine_stage_lr
from ltrank.recipe import StageConfig, TrainConfig


def protocol_lr(epoch: int, cfg: TrainConfig) -> float:
    """Warm-up then step decay: 0.1/3 at epoch 1, 0.1 at 5..159, 1e-3 at 160..179, 1e-5 from 180."""
    if epoch < 1:
        raise ValueError(f"epochs are 1-indexed, got {epoch}")
    if epoch <= cfg.warmup_epochs:
        if cfg.warmup_epochs == 1:
            return cfg.lr
        frac = (epoch - 1) / (cfg.warmup_epochs - 1)
        return cfg.lr * (cfg.warmup_start_factor + (1.0 - cfg.warmup_start_factor) * frac)
    decays = sum(1 for m in cfg.milestones if epoch >= m)
    return cfg.lr * cfg.gamma**decays


def cosine_lr(epoch: int, cfg: TrainConfig) -> float:
    """Warm-up, then half-cosine decay over the rest of ``cfg.epochs`` (float, >= 0).

    With ``lr = 0.1``, 90 epochs and no warm-up: 0.1 at epoch 1, 0.05 at epoch 46, 3.0e-5 at 90.
    Raises ValueError for an epoch below 1.
    """
    if epoch < 1:
        raise ValueError(f"epochs are 1-indexed, got {epoch}")
    if epoch <= cfg.warmup_epochs:
        return protocol_lr(epoch, cfg)  # the same linear warm-up as the step schedule
    span = cfg.epochs - cfg.warmup_epochs
    t = epoch - cfg.warmup_epochs - 1
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * t / span))


def scheduled_lr(epoch: int, cfg: TrainConfig) -> float:
    """The rate of ``epoch`` under ``cfg.lr_schedule`` ('step': :func:`protocol_lr`; 'cosine')."""
    return cosine_lr(epoch, cfg) if cfg.lr_schedule == "cosine" else protocol_lr(epoch, cfg)


@dataclass(frozen=True)
class Phase:
    """A run of consecutive epochs trained with one optimiser (momentum buffers reset between)."""

    index: int
    first_epoch: int
    last_epoch: int
    stage: StageConfig | None  # None: the protocol phase of a recipe without stages


def phases(cfg: TrainConfig) -> list[Phase]:
    """The phases of a run: one protocol phase, or one per ``[[train.stages]]`` entry."""
    if not cfg.stages:
        return [Phase(0, 1, cfg.epochs, None)]
    out, first = [], 1
    for i, stage in enumerate(cfg.stages):
        out.append(Phase(i, first, first + stage.epochs - 1, stage))
        first += stage.epochs
    return out


def phase_at(epoch: int, cfg: TrainConfig) -> Phase:
    """The phase that trains ``epoch`` (1-indexed)."""
    for phase in phases(cfg):
        if phase.first_epoch <= epoch <= phase.last_epoch:
            return phase
    raise ValueError(f"epoch {epoch} is outside 1..{cfg.epochs}")


def lr_at(epoch: int, cfg: TrainConfig) -> float:
    """The learning rate used throughout ``epoch`` (1-indexed)."""
    phase = phase_at(epoch, cfg)
    stage = phase.stage
    if stage is None:
        return scheduled_lr(epoch, cfg)
    assert stage.lr is not None  # a phase with epochs trains, so its stage has an lr
    if stage.lr_schedule == "cosine":
        return cosine_stage_lr(epoch - phase.first_epoch + 1, phase.last_epoch - phase.first_epoch + 1, stage.lr)
    return stage.lr
