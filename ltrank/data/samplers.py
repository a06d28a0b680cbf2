"""Class-aware sampling for DRO-LT's classifier stage (docs/method.md section 6).

Shen et al.'s scheme as DRO-LT uses it: draw a class uniformly among the classes that have
training images, then an image of that class uniformly, independently for every draw (with
replacement). Every class is then seen equally often in expectation, whatever its size.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


def class_aware_indices(labels: torch.Tensor, num_samples: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``num_samples`` dataset indices (int64, CPU): uniform class, then uniform image of it."""
    labels = torch.as_tensor(labels).cpu()
    if labels.ndim != 1 or labels.numel() == 0:
        raise ValueError("labels must be a non-empty 1-d tensor")
    if num_samples < 0:
        raise ValueError(f"num_samples must be >= 0, got {num_samples}")
    order = torch.argsort(labels, stable=True)  # dataset indices grouped by class
    classes, counts = torch.unique_consecutive(labels[order], return_counts=True)
    starts = torch.cumsum(counts, 0) - counts
    which = torch.randint(len(classes), (num_samples,), generator=generator)
    offset = (torch.rand(num_samples, generator=generator, dtype=torch.float64) * counts[which]).long()
    offset = torch.minimum(offset, counts[which] - 1)  # guard the (measure-zero) rounding to count
    return order[starts[which] + offset]


class ClassAwareSampler(Sampler[int]):
    """A ``torch.utils.data`` sampler over :func:`class_aware_indices`, fresh draws every pass.

    ``num_samples`` defaults to the dataset size, so an "epoch" has the usual number of steps.
    :meth:`batches` gives index tensors for trainers that keep the images in memory.
    """

    def __init__(self, labels: torch.Tensor, num_samples: int | None = None, generator: torch.Generator | None = None) -> None:
        self.labels = torch.as_tensor(labels).cpu()
        self.num_samples = len(self.labels) if num_samples is None else num_samples
        self.generator = generator

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        return iter(class_aware_indices(self.labels, self.num_samples, self.generator).tolist())

    def batches(self, batch_size: int, drop_last: bool = True) -> Iterator[torch.Tensor]:
        """One pass of ``num_samples`` draws cut into index batches of ``batch_size``."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        indices = class_aware_indices(self.labels, self.num_samples, self.generator)
        stop = len(indices) - len(indices) % batch_size if drop_last else len(indices)
        for start in range(0, stop, batch_size):
            yield indices[start:start + batch_size]
