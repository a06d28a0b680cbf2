"""Small shared pieces of the loss contract.

A loss is an ``nn.Module`` called as ``loss(logits, targets)`` (plus ``features=`` when its Spec
has ``needs_features``). Its constructor takes its hyperparameters and ``class_counts``.
Losses whose Spec has ``uses_class_weights`` derive from :class:`ClassWeightedLoss`: they own
their target (class-balanced) weights, and the weighting schedule hands them the weights in
force each epoch through :meth:`ClassWeightedLoss.set_class_weights`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ltrank.schedules.class_weights import class_balanced_weights


class ClassWeightedLoss(nn.Module):
    """Holds ``target_weights`` (effective-number weights for ``beta``) and the weights in force.

    Before any schedule speaks, the weights in force are the target weights, so a loss built in
    a plain training loop is the class-balanced method out of the box.
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

    def set_class_weights(self, weights: torch.Tensor) -> None:
        """Replace the per-class weights in force (called by the trainer at each epoch start)."""
        weights = torch.as_tensor(weights, dtype=self.class_weights.dtype)
        if weights.shape != self.class_weights.shape:
            raise ValueError(f"expected {tuple(self.class_weights.shape)} class weights, got {tuple(weights.shape)}")
        self.class_weights.copy_(weights.to(self.class_weights.device))


@dataclass
class EpochContext:
    """What a loss with ``needs_epoch_start`` gets before each epoch (e.g. DRO-LT centroids).

    ``feature_batches`` yields un-augmented ``(images, targets)`` batches of the whole training
    set on ``device``; ``model`` is the model being trained (call it in eval mode and no-grad).
    """

    epoch: int
    total_epochs: int
    model: nn.Module
    feature_batches: Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]]
    device: torch.device
