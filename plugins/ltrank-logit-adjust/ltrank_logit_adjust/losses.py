"""Cross-entropy on logits shifted by the log class prior.

Balanced Softmax (Ren et al. 2020) adds ``log n_c`` to every logit before the softmax; logit
adjustment (Menon et al. 2021) adds ``tau * log pi_c`` with ``pi_c = n_c / sum n``. Since the
softmax ignores a constant shift, Balanced Softmax equals logit adjustment with ``tau = 1``.
Both change only the training loss: prediction stays the argmax of the raw logits.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ltrank.losses import as_class_counts


def log_prior(class_counts: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """``log(n_c / sum n)`` as float64 [C]; every class needs at least one training image."""
    counts = as_class_counts(class_counts, every_class_for="logit adjustment")
    return torch.log(counts / counts.sum())


def logit_adjusted_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Mean ``CE(logits + shift, targets)``; ``shift`` [C] is added to every sample's row."""
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    return F.cross_entropy(logits + shift.to(device=logits.device, dtype=logits.dtype), targets)


class LogitAdjustedLoss(nn.Module):
    """Menon et al.'s logit-adjusted loss: ``CE(z + tau * log pi, y)``."""

    def __init__(self, class_counts: Sequence[int] | torch.Tensor, tau: float = 1.0) -> None:
        super().__init__()
        self.tau = tau
        self.register_buffer("shift", (tau * log_prior(class_counts)).float(), persistent=False)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return logit_adjusted_cross_entropy(logits, targets, self.shift)


class BalancedSoftmaxLoss(nn.Module):
    """Ren et al.'s Balanced Softmax: ``CE(z + log n, y)``."""

    def __init__(self, class_counts: Sequence[int] | torch.Tensor) -> None:
        super().__init__()
        counts = torch.as_tensor(class_counts, dtype=torch.float64)
        # log n_c = log pi_c + log(sum n): the same loss as log pi, written as the paper states it.
        self.register_buffer("shift", (log_prior(counts) + torch.log(counts.sum())).float(), persistent=False)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return logit_adjusted_cross_entropy(logits, targets, self.shift)
