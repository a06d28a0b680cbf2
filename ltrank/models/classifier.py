"""The model every backbone builds: an encoder (images -> pooled features) plus a head."""

from __future__ import annotations

import torch
from torch import nn


class Classifier(nn.Module):
    """``encoder`` maps images to pooled features [B, D]; ``head`` maps features to logits [B, C].

    Keeping the two apart lets losses that need features (DRO-LT) get them without hooks, and
    lets a training stage freeze either part (``classifier.encoder`` / ``classifier.head``).
    """

    def __init__(self, encoder: nn.Module, head: nn.Module, feature_dim: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.feature_dim = feature_dim

    def forward(
        self, x: torch.Tensor, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        features = self.encoder(x)
        logits = self.head(features)
        return (logits, features) if return_features else logits
