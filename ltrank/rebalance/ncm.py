"""Nearest class mean (NCM) classifier of Kang et al., "Decoupling Representation and Classifier
for Long-Tailed Recognition", ICLR 2020: each class is represented by the mean of its
L2-normalised training features, and an image scores each class by the cosine similarity of its
feature to that mean. No training, no class prior: the trained head is ignored.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ltrank.errors import LtrankError


def class_means(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Mean of the L2-normalised ``features`` [N, D] of each class: float32 [C, D].

    Accumulated in float64. Raises LtrankError when a class has no sample (its mean is undefined).
    """
    labels = labels.to(features.device).long()
    counts = torch.bincount(labels, minlength=num_classes)
    missing = (counts == 0).nonzero().flatten().tolist()
    if missing:
        raise LtrankError(
            f"NCM needs training images of every class, but class {missing[0]} has none; "
            "use tau-norm or logit-adjust, or a split that holds every class"
        )
    unit = F.normalize(features.double(), dim=1)
    sums = torch.zeros(num_classes, features.shape[1], dtype=torch.float64, device=features.device)
    sums.index_add_(0, labels, unit)
    return (sums / counts.unsqueeze(1).double()).float()


def ncm_logits(features: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """Cosine similarity [B, C] of every feature [B, D] to every class mean [C, D], in [-1, 1]."""
    return F.normalize(features, dim=1) @ F.normalize(means.to(features.dtype), dim=1).t()


class NCMHead(nn.Module):
    """A head (features [B, D] -> logits [B, C]) scoring classes by :func:`ncm_logits`."""

    def __init__(self, means: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("means", means.detach().float().clone())
        self.out_features = means.shape[0]

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return ncm_logits(features, self.means)
