"""Effective-number class weights (Cui et al. 2019), docs/method.md section 4."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ltrank.errors import LtrankError


def as_class_counts(class_counts: Sequence[int] | torch.Tensor, every_class_for: str | None = None) -> torch.Tensor:
    """Training images per class as a float64 [C] tensor, checked.

    With ``every_class_for`` (a loss name), a class without training images is a one-line
    :class:`LtrankError`: for that loss it would mean an infinite margin or log-prior.
    """
    counts = torch.as_tensor(class_counts, dtype=torch.float64)
    if counts.ndim != 1 or counts.numel() == 0:
        raise ValueError("class_counts must be a non-empty 1-d sequence")
    if (counts < 0).any():
        raise ValueError("class_counts must be >= 0")
    if every_class_for is not None and (counts == 0).any():
        empty = torch.nonzero(counts == 0).flatten().tolist()
        raise LtrankError(
            f"{every_class_for} needs at least one training image per class; classes {empty[:10]} have none; "
            "use a dataset where every class has images, or another loss"
        )
    return counts


def class_balanced_weights(class_counts: Sequence[int] | torch.Tensor, beta: float) -> torch.Tensor:
    """``w_c = (1 - beta) / (1 - beta ** n_c)`` rescaled so that ``sum_c w_c = C``.

    The rescaling is part of the method: without it CB Delta shrinks delta to about zero.
    Returns float32 [C]. Classes with zero training images get weight 0 before rescaling
    (they can never be a positive), and ``beta = 0`` gives all ones.
    """
    counts = as_class_counts(class_counts)
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be in [0, 1), got {beta}")
    effective = 1.0 - torch.pow(torch.full_like(counts, beta), counts)
    raw = torch.where(counts > 0, (1.0 - beta) / effective.clamp_min(1e-300), torch.zeros_like(counts))
    return (raw * (counts.numel() / raw.sum())).to(torch.float32)
