"""LDAM: label-distribution-aware margins on a cosine classifier (Cao et al. 2019; docs/method.md section 6)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ltrank.losses.class_weights import as_class_counts


def ldam_margins(class_counts: Sequence[int] | torch.Tensor, max_m: float = 0.5) -> torch.Tensor:
    """Per-class margins ``m_c = max_m * n_c^(-1/4) / max_c' n_c'^(-1/4)`` (float64 [C]).

    The rarest class gets exactly ``max_m``; margins shrink as n_c^(-1/4) for frequent classes.
    """
    counts = as_class_counts(class_counts, every_class_for="LDAM")
    inv_quarter = counts.pow(-0.25)
    return inv_quarter * (max_m / inv_quarter.max())


def ldam_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    class_counts: Sequence[int] | torch.Tensor,
    max_m: float = 0.5,
    s: float = 30.0,
    class_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """``CE(s * (cos - m_y onehot(y)), y)`` with optional class weights.

    ``logits`` must be cosine similarities from a normalised, bias-free classifier
    (``head="cosine"``). The margin of the sample's own class is subtracted from its true-class
    entry only, then all entries are scaled by ``s``. With ``class_weights`` the reduction is
    PyTorch's weighted mean, ``sum_b w_{y_b} ce_b / sum_b w_{y_b}`` (not divided by B).
    """
    margins = ldam_margins(class_counts, max_m)
    return ldam_loss_from_margins(logits, targets, margins=margins, s=s, class_weights=class_weights)


def ldam_loss_from_margins(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    margins: torch.Tensor,
    s: float = 30.0,
    class_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """:func:`ldam_loss` with precomputed per-class ``margins`` [C] (the module caches them)."""
    if logits.ndim != 2 or targets.shape != logits.shape[:1]:
        raise ValueError(
            f"expected logits [B, C] and targets [B], got {tuple(logits.shape)} and {tuple(targets.shape)}"
        )
    if margins.shape != logits.shape[1:]:
        raise ValueError(f"{margins.numel()} class margins for {logits.shape[1]} logits per sample")
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    dtype, device = logits.dtype, logits.device
    margins = margins.to(device=device, dtype=dtype)
    onehot = F.one_hot(targets, logits.shape[1]).to(dtype)
    shifted = logits - onehot * margins[targets].unsqueeze(1)
    weight = None if class_weights is None else class_weights.to(device=device, dtype=dtype)
    return F.cross_entropy(s * shifted, targets, weight=weight)
