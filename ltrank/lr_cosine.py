"""The cosine learning-rate schedule of ``train.lr_schedule = "cosine"`` (Kang et al., Decoupling
Representation and Classifier for Long-Tailed Recognition, ICLR 2020: joint training with cosine
decay), and the dispatch between it and the step protocol of METHOD.md section 3.

Epochs are 1-indexed and the rate is constant within an epoch, as in ``ltrank.engine.lr``. The
warm-up is the protocol's (linear from ``lr * warmup_start_factor``); after it the rate follows
``lr * (1 + cos(pi * t / T)) / 2`` with ``t`` the epochs since the warm-up ended (0 at the first
post-warm-up epoch) and ``T = epochs - warmup_epochs``: the first epoch after the warm-up trains at
``lr`` and the rate approaches 0 at the end, as PyTorch's ``CosineAnnealingLR(T_max=T, eta_min=0)``
stepped once per epoch.
"""

from __future__ import annotations

import math

from ltrank.engine.lr import protocol_lr
from ltrank.recipe import TrainConfig


def cosine_lr(epoch: int, cfg: TrainConfig) -> float:
    """Warm-up, then half-cosine decay over the rest of ``cfg.epochs`` (float, >= 0).

    With ``lr = 0.1``, 90 epochs and no warm-up: 0.1 at epoch 1, 0.05 at epoch 46, 3.0e-5 at 90.
    Raises ValueError for an epoch below 1.
    """
    if epoch < 1:
        raise ValueError(f"epochs are 1-indexed, got {epoch}")
    if epoch <= cfg.warmup_epochs:
        return protocol_lr(epoch, cfg)  # the same linear warm-up as the step schedule
    span = cfg.epochs - cfg.warmup_epochs
    t = epoch - cfg.warmup_epochs - 1
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * t / span))


def scheduled_lr(epoch: int, cfg: TrainConfig) -> float:
    """The rate of ``epoch`` under ``cfg.lr_schedule`` ('step': :func:`protocol_lr`; 'cosine')."""
    return cosine_lr(epoch, cfg) if cfg.lr_schedule == "cosine" else protocol_lr(epoch, cfg)
