"""Test-set evaluation: top-1 and per-class accuracy (docs/method.md section 2)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
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
def predict_batches(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], device: torch.device,
                    on_batch: Optional[BatchHook] = None, total: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Arg-max predictions and labels (CPU int64 [N]) over normalised ``(x, y)`` batches, the model
    in eval mode (restored afterwards), bf16 autocast on CUDA. Predictions stay on the device
    until the end: one device-to-host copy per pass, not one per batch. ``on_batch(b, total)``
    reports progress."""
    was_training = model.training
    model.eval()
    preds, labels = [], []
    try:
        for b, (x, y) in enumerate(batches, start=1):
            with autocast_for(device):
                preds.append(model(to_model_layout(x)).argmax(dim=1))
            labels.append(y)
            if on_batch is not None:
                on_batch(b, total)
    finally:
        model.train(was_training)
    if not preds:
        empty = torch.zeros(0, dtype=torch.long)
        return empty, empty
    return torch.cat(preds).cpu(), torch.cat(labels).cpu()


def predict(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, device: torch.device,
            batch_size: int) -> torch.Tensor:
    """Arg-max predictions (CPU int64) for uint8 images with the test transform."""
    batches = iterate_batches(images, labels, batch_size, shuffle=False, drop_last=False, device=device)
    return predict_batches(model, batches, device)[0]


def accuracy(preds: torch.Tensor, labels: torch.Tensor, num_classes: int) -> Accuracy:
    """Top-1 and per-class accuracy of predictions (fractions)."""
    top1 = (preds == labels).double().mean().item() if len(labels) else float("nan")
    return Accuracy(top1=top1, per_class=per_class_accuracy(preds, labels, num_classes))


def evaluate_batches(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], num_classes: int,
                     device: torch.device, on_batch: Optional[BatchHook] = None, total: int = 0) -> Accuracy:
    """Top-1 and per-class accuracy over normalised batches (fractions, as ``make_metrics`` takes them)."""
    return accuracy(*predict_batches(model, batches, device, on_batch, total), num_classes)


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, num_classes: int,
             device: torch.device, batch_size: int = 1000) -> Accuracy:
    """:func:`evaluate_batches` over uint8 images held in memory, with the test transform."""
    batches = iterate_batches(images, labels, batch_size, shuffle=False, drop_last=False, device=device)
    return evaluate_batches(model, batches, num_classes, device)
