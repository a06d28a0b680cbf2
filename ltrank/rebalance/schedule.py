"""The learning rate of a short classifier stage: cosine annealing, as the decoupling configs use."""

from __future__ import annotations

import math


def cosine_stage_lr(epoch: int, epochs: int, lr: float, final_lr: float = 0.0) -> float:
    """lr of 1-indexed ``epoch`` of a stage of ``epochs``: ``lr`` at epoch 1, annealed towards ``final_lr``.

    ``final_lr + (lr - final_lr) * (1 + cos(pi * (epoch - 1) / epochs)) / 2``, set once per epoch,
    as MiSLAS's classifier stage does (the public cRT / LWS code steps ``CosineAnnealingLR`` at
    the start of each epoch, one step later: its last epoch runs at ``final_lr``). Raises
    ValueError for an epoch outside 1..epochs.
    """
    if not 1 <= epoch <= epochs:
        raise ValueError(f"epoch must be in 1..{epochs}, got {epoch}")
    return final_lr + (lr - final_lr) * (1.0 + math.cos(math.pi * (epoch - 1) / epochs)) / 2.0
