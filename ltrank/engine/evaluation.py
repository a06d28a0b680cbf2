"""Test-set evaluation: top-1 and per-class accuracy (docs/method.md section 2)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from ltrank.data.batches import iterate_batches
from ltrank.engine.device import autocast_for, to_model_layout
from ltrank.metrics import per_class_accuracy


@dataclass(frozen=True)
class Accuracy:
    top1: float  # fraction of all test images, in [0, 1]
    per_class: list[float]  # fraction per class, label order (NaN for a class absent from the test set)


#: Called after each batch with (batch, batches), batch 1-indexed: progress for a display.
BatchHook = Callable[[int, int], None]


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, device: torch.device,
            batch_size: int, on_batch: Optional[BatchHook] = None) -> torch.Tensor:
    """Arg-max predictions (CPU int64) for uint8 images, model in eval mode, test transform."""
    was_training = model.training
    model.eval()
    preds = []
    batches = -(-len(labels) // batch_size)
    try:
        for b, (x, _) in enumerate(iterate_batches(images, labels, batch_size, shuffle=False, drop_last=False,
                                                   device=device), start=1):
            with autocast_for(device):
                preds.append(model(to_model_layout(x)).argmax(dim=1))
            if on_batch is not None:
                on_batch(b, batches)
    finally:
        model.train(was_training)
    return torch.cat(preds).cpu()  # one device-to-host copy, not one per batch


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, num_classes: int,
             device: torch.device, batch_size: int = 1000, on_batch: Optional[BatchHook] = None) -> Accuracy:
    """Top-1 and per-class accuracy (fractions, as ``results.make_metrics`` takes them)."""
    preds = predict(model, images, labels, device, batch_size, on_batch)
    labels = labels.cpu()
    top1 = (preds == labels).double().mean().item()
    return Accuracy(top1=top1, per_class=per_class_accuracy(preds, labels, num_classes))
