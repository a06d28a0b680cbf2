"""Pooled features of a whole image split, as the post-hoc methods need them (NCM, tau=auto)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from ltrank.data.batches import iterate_batches
from ltrank.engine.device import autocast_for, to_model_layout


@torch.no_grad()
def extract_batch_features(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                           device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``model.encoder`` features (float32 [N, D]) and labels (int64 [N]) over normalised ``(x, y)``
    batches (e.g. a streamed split), on ``device``; the encoder in eval mode (restored afterwards),
    bf16 autocast on CUDA as evaluation does."""
    encoder = model.encoder
    was_training = encoder.training
    encoder.eval()
    feats, ys = [], []
    try:
        for x, y in batches:
            with autocast_for(device):
                feats.append(encoder(to_model_layout(x.to(device))).float())
            ys.append(y.to(device))
    finally:
        encoder.train(was_training)
    return torch.cat(feats), torch.cat(ys)


def extract_features(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, device: torch.device,
                     batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`extract_batch_features` of uint8 ``images`` [N, 3, H, W] held in memory, with the test
    transform only (normalisation, no crop or flip)."""
    batches = iterate_batches(images, labels, batch_size, shuffle=False, drop_last=False, device=device)
    return extract_batch_features(model, batches, device)
