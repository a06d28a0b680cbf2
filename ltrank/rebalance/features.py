"""Pooled features of a whole image split, as the post-hoc methods need them (NCM, tau=auto)."""

from __future__ import annotations

import torch
from torch import nn

from ltrank.data.batches import iterate_batches
from ltrank.engine.device import autocast_for, to_model_layout


@torch.no_grad()
def extract_features(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, device: torch.device,
                     batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """``model.encoder`` features (float32 [N, D]) and labels (int64 [N]), both on ``device``.

    uint8 ``images`` [N, 3, H, W] get the test transform only (normalisation, no crop or flip);
    the model runs in eval mode (restored afterwards), under bf16 autocast on CUDA as evaluation does.
    """
    encoder = model.encoder
    was_training = encoder.training
    encoder.eval()
    feats, ys = [], []
    try:
        for x, y in iterate_batches(images, labels, batch_size, shuffle=False, drop_last=False, device=device):
            with autocast_for(device):
                feats.append(encoder(to_model_layout(x)).float())
            ys.append(y)
    finally:
        encoder.train(was_training)
    return torch.cat(feats), torch.cat(ys)
