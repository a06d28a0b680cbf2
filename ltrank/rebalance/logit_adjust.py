"""Post-hoc logit adjustment of Menon et al., "Long-tail learning via logit adjustment", ICLR 2021:
predict ``argmax_y f_y(x) - tau * log(pi_y)`` with ``pi`` the training class
prior. tau = 1 is Bayes-optimal for the balanced error when the softmax estimates p(y|x)
exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ltrank.errors import LtrankError


def class_prior(class_counts: Sequence[int]) -> torch.Tensor:
    """Training class frequencies ``n_c / sum n`` (float64 [C]); every count must be > 0."""
    counts = torch.as_tensor(list(class_counts), dtype=torch.float64)
    if counts.ndim != 1 or counts.numel() == 0:
        raise LtrankError("logit adjustment needs the training class counts (one per class); none were given")
    empty = (counts <= 0).nonzero().flatten().tolist()
    if empty:
        raise LtrankError(
            f"logit adjustment needs every class in the training set, but class {empty[0]} has no training "
            "images (log prior = -inf); use tau-norm or ncm, or a split that holds every class"
        )
    return counts / counts.sum()


def adjust_logits(logits: torch.Tensor, prior: torch.Tensor, tau: float) -> torch.Tensor:
    """``logits - tau * log(prior)`` for logits [B, C] and prior [C]; dtype of ``logits``."""
    return logits - (tau * prior.double().log()).to(device=logits.device, dtype=logits.dtype)


class LogitAdjusted(nn.Module):
    """``model``'s logits, times ``logit_scale``, minus ``tau * log(prior)``.

    ``logit_scale`` is the factor the training loss applied to the model's outputs before its
    softmax (LDAM on a cosine head: its ``s``, e.g. 30; otherwise 1), so that the prior is
    subtracted from the logits the softmax was trained on. ``model`` is shared, not copied.
    """

    def __init__(self, model: nn.Module, prior: torch.Tensor, tau: float, logit_scale: float = 1.0) -> None:
        super().__init__()
        self.model = model
        self.tau, self.logit_scale = float(tau), float(logit_scale)
        self.register_buffer("log_prior", prior.double().log().float())

    def forward(self, x: torch.Tensor, return_features: bool = False):
        logits, features = self.model(x, return_features=True)
        adjusted = self.logit_scale * logits - self.tau * self.log_prior.to(logits.dtype)
        return (adjusted, features) if return_features else adjusted
