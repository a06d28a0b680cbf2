"""Batched, seeded image transforms on uint8 CIFAR-style batches (docs/method.md section 1).

The training transform is the reference one -- zero-pad 4 pixels, random 32x32 crop, horizontal
flip with p = 0.5, normalise -- done for a whole batch with one gather on the batch's device
instead of per-image PIL calls. Random draws come from a CPU ``torch.Generator``, so a seed gives
the same crops and flips on every device.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import torch

from ltrank.data.sharding import shard_positions

#: Per-channel normalisation constants used for both CIFAR-10 and CIFAR-100 (docs/method.md section 1).
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2023, 0.1994, 0.2010)
PADDING = 4


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 [B, 3, H, W] -> float32 ``(x / 255 - mean) / std`` on the same device."""
    mean, std = _constants(images.device)
    return images.float().div_(255.0).sub_(mean).div_(std)


@functools.lru_cache(maxsize=None)
def _constants(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """MEAN and STD as [1, 3, 1, 1] tensors, made once per device (no host copy per batch)."""
    return (torch.tensor(MEAN, device=device).view(1, 3, 1, 1), torch.tensor(STD, device=device).view(1, 3, 1, 1))


def draw_crop_flip(
    batch_size: int, generator: torch.Generator | None, padding: int = PADDING
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random (top, left) offsets in the padded image, in 0..2*padding, and flip flags (p = 0.5).

    Drawn on the CPU so results do not depend on the device of the images.
    """
    top = torch.randint(0, 2 * padding + 1, (batch_size,), generator=generator)
    left = torch.randint(0, 2 * padding + 1, (batch_size,), generator=generator)
    flip = torch.rand(batch_size, generator=generator) < 0.5
    return top, left, flip


def crop_flip(
    images: torch.Tensor, top: torch.Tensor, left: torch.Tensor, flip: torch.Tensor, padding: int = PADDING
) -> torch.Tensor:
    """Zero-pad by ``padding``, crop the original size at (top, left), mirror where ``flip``.

    The padded batch is viewed (``unfold``, no copy) as every possible window,
    [B, 3, 2p+1, 2p+1, H, W]; one index picks each image's window. This was the fastest of the
    variants timed in benchmarks/data_speed.py. uint8 in, uint8 out.
    """
    b, _, h, w = images.shape
    device = images.device
    padded = torch.nn.functional.pad(images, (padding, padding, padding, padding))
    windows = padded.unfold(2, h, 1).unfold(3, w, 1)
    crops = windows[torch.arange(b, device=device), :, top.to(device), left.to(device)]
    return torch.where(flip.to(device)[:, None, None, None], crops.flip(3), crops)


def train_transform(images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """The training augmentation of docs/method.md section 1 on a uint8 batch; returns float32."""
    top, left, flip = draw_crop_flip(images.shape[0], generator)
    return normalize(crop_flip(images, top, left, flip))


def num_batches(n: int, batch_size: int, drop_last: bool) -> int:
    """How many batches :func:`iterate_batches` yields for ``n`` samples."""
    return n // batch_size if drop_last else -(-n // batch_size)


def iterate_batches(
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    *,
    shuffle: bool,
    drop_last: bool,
    generator: torch.Generator | None = None,
    augment: bool = False,
    device: torch.device | str | None = None,
    order: torch.Tensor | None = None,
    world_size: int = 1,
    rank: int = 0,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(x, y)`` batches: x float32 normalised [B, 3, H, W], y int64, both on ``device``.

    ``shuffle`` draws a permutation from ``generator`` (a CPU generator); ``order`` instead gives
    the sample indices to visit (e.g. from a class-aware sampler). uint8 images are moved to the
    device before the transform (4x less to copy); ``augment`` applies the training augmentation
    (the crops and flips of the whole epoch drawn at once from ``generator``),
    else only :func:`normalize` (the test transform).

    Distributed training: with ``world_size`` > 1, ``batch_size`` is the global batch and this
    yields rank ``rank``'s slice of each global batch (``batch_size / world_size`` rows, see
    :mod:`ltrank.data.sharding`) with the crops and flips a single process draws for those rows;
    every rank must pass the same seeded ``order``/``generator``. Needs full global batches
    (``drop_last``, or a length that ``batch_size`` divides); a ``batch_size`` that
    ``world_size`` does not divide is an :class:`~ltrank.errors.LtrankError`.
    """
    device = torch.device(device) if device is not None else images.device
    n = len(labels) if order is None else len(order)
    if order is None:
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    used = num_batches(n, batch_size, drop_last) * batch_size if drop_last else n
    # The epoch's order and random crops/flips go to the device once, not once per batch: small
    # host-to-device copies inside the loop would stall a GPU's queue every batch.
    order = order[:used].to(images.device)
    if augment:
        top, left, flip = (t.to(device) for t in draw_crop_flip(used, generator))
    if world_size > 1:
        if used % batch_size:
            raise ValueError("sharded batches need full global batches: pass drop_last=True")
        keep = shard_positions(used, batch_size, world_size, rank)
        order = order[keep.to(order.device)]
        if augment:
            top, left, flip = (t[keep.to(device)] for t in (top, left, flip))
        batch_size, used = batch_size // world_size, len(keep)
    for start in range(0, used, batch_size):
        stop = min(start + batch_size, used)
        # index_select: much faster than advanced indexing for whole-row gathers on CPU
        x = images.index_select(0, order[start:stop]).to(device, non_blocking=True)
        y = labels.index_select(0, order[start:stop].to(labels.device)).to(device, non_blocking=True)
        if augment:
            yield normalize(crop_flip(x, top[start:stop], left[start:stop], flip[start:stop])), y
        else:
            yield normalize(x), y
