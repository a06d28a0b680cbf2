"""Sigmoid focal loss as Bag of Tricks runs it, with optional CB weights (docs/method.md section 6)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def focal_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    gamma: float = 2.0,
    class_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Sigmoid focal loss over all B*C one-hot entries, summed and divided by B (no alpha).

    Entry (b, c) with one-hot target t and p = sigmoid(z) costs
    ``BCEWithLogits(z, t) * ((1 - p) t + p (1 - t)) ** gamma``. With ``class_weights`` [C],
    every entry of sample b's row is multiplied by ``w[y_b]`` (Cui et al.'s CB Focal); the
    divisor stays B. The modulating factor is computed as ``exp(gamma * logsigmoid(.))`` so
    that extreme logits stay finite.
    """
    if logits.ndim != 2 or targets.shape != logits.shape[:1]:
        raise ValueError(f"expected logits [B, C] and targets [B], got {tuple(logits.shape)} and {tuple(targets.shape)}")
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    onehot = F.one_hot(targets, logits.shape[1]).to(logits.dtype)
    # s = z for a negative entry, -z for the positive one: sigmoid(s) is the "wrong" probability.
    wrong_side = logits * (1.0 - 2.0 * onehot)
    bce = F.softplus(wrong_side)  # = BCEWithLogits(z, t)
    entries = bce if gamma == 0 else bce * torch.exp(gamma * F.logsigmoid(wrong_side))
    per_sample = entries.sum(dim=1)
    if class_weights is not None:
        per_sample = per_sample * class_weights.to(device=logits.device, dtype=logits.dtype)[targets]
    return per_sample.sum() / logits.shape[0]
