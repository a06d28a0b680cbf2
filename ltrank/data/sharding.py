"""Which rows each rank of a distributed run takes, so that global batches equal single-process ones.

Every rank draws the same seeded global order of the epoch (a shuffle permutation or the
class-aware sampler's draws) and the same augmentation draws; global batch k is rows
``k * batch_size ... (k + 1) * batch_size - 1`` of that order, as in a single process, and rank r
takes the r-th contiguous ``batch_size / world_size`` rows of it. The tail that does not fill a
global batch is dropped (training uses ``drop_last``). Evaluation instead splits the test set
into ``world_size`` contiguous shards whose sizes differ by at most one.
"""

from __future__ import annotations

import torch

from ltrank.errors import LtrankError


def local_batch_size(batch_size: int, world_size: int) -> int:
    """``batch_size / world_size``; a batch that does not divide is a one-line :class:`LtrankError`."""
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    if batch_size % world_size:
        raise LtrankError(
            f"train.batch_size {batch_size} does not split evenly over {world_size} processes; "
            f"use a multiple of {world_size} (it stays the global batch: each process gets batch_size / {world_size})"
        )
    return batch_size // world_size


def shard_positions(n: int, batch_size: int, world_size: int, rank: int) -> torch.Tensor:
    """Positions (int64 [B_local * n_batches]) in an epoch's order of ``n`` rows that rank r takes.

    Batch k of the rank is positions ``k * batch_size + rank * b ... + b - 1`` with
    ``b = batch_size / world_size``; only the ``n // batch_size`` full global batches are used.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must lie in [0, {world_size - 1}], got {rank}")
    b = local_batch_size(batch_size, world_size)
    n_batches = n // batch_size
    starts = torch.arange(n_batches, dtype=torch.long) * batch_size + rank * b
    return (starts[:, None] + torch.arange(b, dtype=torch.long)).reshape(-1)


def shard_order(order: torch.Tensor, batch_size: int, world_size: int, rank: int) -> torch.Tensor:
    """Rank r's rows of every full global batch of ``order`` (dataset indices), in visiting order.

    Cut the result into batches of ``batch_size / world_size``: batch k of rank r is the r-th
    slice of the single-process batch k, so the ranks' batches k, concatenated in rank order,
    are the single-process batch k.
    """
    return order[shard_positions(len(order), batch_size, world_size, rank).to(order.device)]


def eval_shard(n: int, world_size: int, rank: int) -> tuple[int, int]:
    """``(start, stop)`` of rank r's contiguous shard of ``n`` test rows.

    The first ``n % world_size`` ranks get one row more; the shards in rank order cover
    ``0 .. n - 1`` exactly once (a shard may be empty when n < world_size).
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must lie in [0, {world_size - 1}], got {rank}")
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)
