"""The loss contract's shared pieces: the epoch hook and class-weighted losses.

A loss is an ``nn.Module`` called as ``loss(logits, targets)`` (plus ``features=`` when its Spec
has ``needs_features``). Its constructor takes its hyperparameters and ``class_counts``.

**One hook per epoch.** Before every epoch the trainer calls ``loss.epoch_start(ctx)`` on every
loss that defines it (built-in or plugin) with one :class:`EpochContext`. Whatever a loss needs
to prepare for the epoch goes through that single call: a class-weighted loss asks the
context's weighting schedule for the weights in force (:class:`ClassWeightedLoss`), DRO-LT
recomputes its class centroids from the model. Nothing else hands data to a loss between
batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Optional, Protocol

import torch
from torch import nn

from ltrank.losses.class_weights import class_balanced_weights


class WeightingSchedule(Protocol):
    """What a loss consults for its class weights (docs/method.md section 4; ``ltrank.schedules``)."""

    def weights(self, epoch: int, total_epochs: int, target: torch.Tensor) -> torch.Tensor:
        """The [C] weights in force at ``epoch`` (1-indexed) of ``total_epochs``, given the
        loss's class-balanced ``target`` weights."""
        ...


@dataclass
class EpochContext:
    """What ``loss.epoch_start(ctx)`` receives before each epoch.

    ``schedule`` is the recipe's weighting schedule (None: leave the weights as they are).
    ``model`` and ``feature_batches`` are for losses that look at the model (DRO-LT):
    ``feature_batches()`` yields un-augmented ``(images, targets)`` batches of the whole training
    set on ``device`` (in a smoke run, ``train.max_batches_per_epoch`` caps it to as many images
    as an epoch trains on, every class kept); call the model in eval mode and without gradients. Both may be None when a
    loss is used outside the trainer.
    """

    epoch: int
    total_epochs: int
    schedule: Optional[WeightingSchedule] = None
    model: Optional[nn.Module] = None
    feature_batches: Optional[Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]]] = None
    device: torch.device = torch.device("cpu")


class ClassWeightedLoss(nn.Module):
    """Holds ``target_weights`` (effective-number weights for ``beta``) and the weights in force.

    Before any schedule speaks, the weights in force are the target weights, so a loss built in
    a plain training loop is the class-balanced method out of the box. At each
    :meth:`epoch_start` the context's schedule decides how much of the target weights applies.
    """

    def __init__(self, class_counts: Sequence[int] | torch.Tensor, beta: float) -> None:
        super().__init__()
        self.beta = beta
        target = class_balanced_weights(class_counts, beta)
        self.register_buffer("target_weights", target, persistent=False)
        self.register_buffer("class_weights", target.clone(), persistent=False)

    @property
    def num_classes(self) -> int:
        return int(self.target_weights.numel())

    def epoch_start(self, ctx: EpochContext) -> None:
        """Take the weights the schedule puts in force for this epoch (none: keep them)."""
        if ctx.schedule is None:
            return
        weights = ctx.schedule.weights(ctx.epoch, ctx.total_epochs, self.target_weights)
        weights = torch.as_tensor(weights)
        if weights.shape != self.class_weights.shape:
            raise ValueError(
                f"weighting schedule {type(ctx.schedule).__name__} returned {tuple(weights.shape)} class weights, "
                f"expected {tuple(self.class_weights.shape)} (one per class)"
            )
        self.set_class_weights(weights)

    def set_class_weights(self, weights: torch.Tensor) -> None:
        """Replace the per-class weights in force ([C], finite, >= 0)."""
        weights = torch.as_tensor(weights, dtype=self.class_weights.dtype)
        if weights.shape != self.class_weights.shape:
            raise ValueError(f"expected {tuple(self.class_weights.shape)} class weights, got {tuple(weights.shape)}")
        if not bool(torch.isfinite(weights).all()) or bool((weights < 0).any()):
            raise ValueError("class weights must be finite and >= 0")
        self.class_weights.copy_(weights.to(self.class_weights.device))
