"""Classifier heads: features [B, D] -> logits [B, C]."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CosineHead(nn.Module):
    """Cosine-similarity classifier for LDAM (docs/method.md section 6).

    Features and class weight vectors are L2-normalised and there is no bias, so every logit is
    a cosine similarity in [-1, 1]. The loss (e.g. LDAM) applies its own scale ``s``.
    """

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = num_classes
        self.weight = nn.Parameter(torch.empty(num_classes, in_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw fresh class vectors (also used by classifier re-training, ``ltrank.rebalance``)."""
        # As the LDAM reference's NormedLinear: uniform(-1, 1), then every class vector scaled to
        # norm 1. The logits ignore the norm, but SGD steps on the direction shrink as 1/norm^2.
        nn.init.uniform_(self.weight, -1.0, 1.0)
        with torch.no_grad():
            self.weight.copy_(F.normalize(self.weight, dim=1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(features, dim=1) @ F.normalize(self.weight, dim=1).t()


def make_head(kind: str, in_features: int, num_classes: int) -> nn.Module:
    """``"linear"`` (nn.Linear with bias) or ``"cosine"`` (:class:`CosineHead`)."""
    if kind == "linear":
        return nn.Linear(in_features, num_classes)
    if kind == "cosine":
        return CosineHead(in_features, num_classes)
    raise ValueError(f"unknown head {kind!r}; use 'linear' or 'cosine'")
