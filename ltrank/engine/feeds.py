"""What the trainer reads: a training set and a test set, as batches for every kind of pass.

Two feeds with one interface, so the training loop does not know which it has:

- :class:`MemoryFeed` holds the images as uint8 tensors on the training device and augments whole
  batches there (CIFAR, npz image sets, small image folders; the fastest path for 32x32 data).
  Its data order and augmentation come from two seeded generators whose states the checkpoints
  carry.
- :class:`StreamFeed` decodes images from disk in DataLoader worker processes (ImageNet-LT,
  Places-LT, iNaturalist 2018, split lists, folders too large for memory;
  :mod:`ltrank.data.streaming`). Its order and augmentation are functions of (seed, epoch,
  index), so it has no state to checkpoint and any worker count gives the same batches.

Passes: ``train_batches`` (augmented, shuffled or class-aware, full batches), ``feature_batches``
(the training set with the test transform, for a loss's epoch-start pass such as DRO-LT's
centroids) and ``test_batches``. Every batch is ``(x, y)`` on the device: x float32 normalised
[B, 3, H, W], y int64 [B].

Distributed runs give each rank its slice of every global batch (the same order on every rank)
and a contiguous shard of the sets an evaluation or feature pass reads
(:mod:`ltrank.data.sharding`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any, Optional, Union

import torch

from ltrank.data import DatasetConfig, LongTailedData, StreamSource, decide_streaming, load_longtailed
from ltrank.data.batches import iterate_batches, num_batches
from ltrank.data.samplers import class_aware_indices
from ltrank.data.sharding import eval_shard
from ltrank.errors import LtrankError

#: Added to the run seed for the augmentation generator, so crops/flips and data order differ.
AUGMENT_SEED_OFFSET = 1_000_003

#: What a run trains on: a long-tailed set in memory, or a source streamed from disk.
TrainingData = Union[LongTailedData, StreamSource]

Batch = tuple[torch.Tensor, torch.Tensor]


def load_training_data(cfg: DatasetConfig, data_dir=None) -> TrainingData:
    """The recipe's data, held in memory or opened for streaming (:func:`decide_streaming`)."""
    from ltrank.data import open_stream_source

    if decide_streaming(cfg, data_dir).stream:
        return open_stream_source(cfg, data_dir)
    return load_longtailed(cfg, data_dir)


@dataclass(frozen=True)
class Caps:
    """Smoke-run caps on the feature and test passes, in images (None: the whole set).

    A capped pass keeps every class (:func:`ltrank.engine.capped.balanced_indices`)."""

    feature_images: Optional[int] = None  # train.max_batches_per_epoch x train.batch_size
    test_images: Optional[int] = None  # eval.max_batches x eval.batch_size

    @classmethod
    def of(cls, recipe: Any) -> "Caps":
        train, evaluation = recipe.train, recipe.eval
        return cls(
            train.max_batches_per_epoch * train.batch_size if train.max_batches_per_epoch else None,
            evaluation.max_batches * evaluation.batch_size if evaluation.max_batches else None,
        )


@dataclass(frozen=True)
class Sharding:
    """This process's place among the data-parallel processes (1 and 0 when alone)."""

    world_size: int = 1
    rank: int = 0


class MemoryFeed:
    """Batches of a :class:`~ltrank.data.LongTailedData` held on the training device."""

    def __init__(self, data: LongTailedData, *, seed: int, device: torch.device, sharding: Sharding = Sharding(),
                 caps: Caps = Caps()) -> None:
        from ltrank.engine.capped import balanced_indices

        self.data, self.device, self.sharding = data, device, sharding
        self.generators = {
            "order": torch.Generator().manual_seed(seed),
            "augment": torch.Generator().manual_seed(seed + AUGMENT_SEED_OFFSET),
        }
        self.train_images = data.train_images.to(device)
        self.train_labels = data.train_labels.to(device)
        keep = slice(None) if caps.feature_images is None else balanced_indices(data.train_labels, caps.feature_images)
        self.feature_images, self.feature_labels = self.train_images[keep], self.train_labels[keep]
        keep = slice(None) if caps.test_images is None else balanced_indices(data.test_labels, caps.test_images)
        self.test_images = data.test_images[keep].to(device)
        self.test_labels = data.test_labels[keep].to(device)

    @property
    def num_train(self) -> int:
        return len(self.data.train_labels)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.data.train_images.shape[1:])  # type: ignore[return-value]

    @property
    def feature_count(self) -> int:
        """Images this process reads in a feature pass."""
        return _shard_len(len(self.feature_labels), self.sharding)

    @property
    def test_count(self) -> int:
        """Images this process reads in a test pass."""
        return _shard_len(len(self.test_labels), self.sharding)

    def train_batches(self, epoch: int, batch_size: int, sampler: str) -> Iterator[Batch]:
        """This epoch's augmented batches (full global batches; this rank's slice of each)."""
        n = self.num_train
        if sampler == "class_aware":
            order = class_aware_indices(self.train_labels, n, generator=self.generators["order"])
        else:
            order = torch.randperm(n, generator=self.generators["order"])
        return iterate_batches(self.train_images, self.train_labels, batch_size, shuffle=False, drop_last=True,
                               generator=self.generators["augment"], augment=True, device=self.device, order=order,
                               world_size=self.sharding.world_size, rank=self.sharding.rank)

    def feature_batches(self, batch_size: int) -> Iterator[Batch]:
        """The training set with the test transform (this rank's shard)."""
        return self._plain(self.feature_images, self.feature_labels, batch_size)

    def test_batches(self, batch_size: int) -> Iterator[Batch]:
        """The test set with the test transform (this rank's shard, in order)."""
        return self._plain(self.test_images, self.test_labels, batch_size)

    def _plain(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int) -> Iterator[Batch]:
        lo, hi = eval_shard(len(labels), self.sharding.world_size, self.sharding.rank)
        return iterate_batches(images[lo:hi], labels[lo:hi], batch_size, shuffle=False, drop_last=False,
                               device=self.device)

    def failures(self) -> Optional[dict[str, Any]]:
        return None


class StreamFeed:
    """Batches of a :class:`~ltrank.data.StreamSource` decoded from disk by worker processes."""

    def __init__(self, source: StreamSource, cfg: DatasetConfig, *, seed: int, device: torch.device,
                 batch_size: int, eval_batch_size: int, workers: int, sharding: Sharding = Sharding(),
                 caps: Caps = Caps()) -> None:
        from ltrank.data import make_loader

        if sharding.world_size > 1:
            raise LtrankError("streamed sources do not train with several processes yet; use one process per run")
        self.source, self.cfg, self.seed, self.device, self.workers = source, cfg, seed, device, workers
        self.sharding, self.caps, self._eval_batch_size = sharding, caps, eval_batch_size
        self.generators: dict[str, torch.Generator] = {}  # order and augmentation are keyed by (seed, epoch, index)
        self._make = make_loader
        self._train: dict[str, Any] = {}
        self._batch_size = batch_size
        self.feature_loader = make_loader(source, "train", cfg, seed=seed, batch_size=eval_batch_size,
                                          num_workers=workers, device=device, train=False)
        self.test_loader = make_loader(source, "test", cfg, seed=seed, batch_size=eval_batch_size,
                                       num_workers=workers, device=device)

    @property
    def num_train(self) -> int:
        return len(self.source.train.labels)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        from ltrank.data.streaming import image_size_of

        size = image_size_of(self.cfg)
        return (3, size, size)

    @property
    def feature_count(self) -> int:
        return min(len(self.source.train.labels), self._batches_of(self.caps.feature_images))

    @property
    def test_count(self) -> int:
        return min(len(self.source.test.labels), self._batches_of(self.caps.test_images))

    def _batches_of(self, images: Optional[int]) -> int:
        """A cap in images rounded up to whole evaluation batches (streams are capped by batches)."""
        return 1 << 62 if images is None else -(-images // self._eval_batch_size) * self._eval_batch_size

    def _train_loader(self, sampler: str, batch_size: int):
        if batch_size != self._batch_size:
            raise ValueError(f"this feed was built for batches of {self._batch_size}, not {batch_size}")
        if sampler not in self._train:
            self._train[sampler] = self._make(self.source, "train", self.cfg, seed=self.seed, batch_size=batch_size,
                                              num_workers=self.workers, device=self.device,
                                              class_aware=sampler == "class_aware")
        return self._train[sampler]

    def train_batches(self, epoch: int, batch_size: int, sampler: str) -> Iterator[Batch]:
        loader = self._train_loader(sampler, batch_size)
        loader.set_epoch(epoch)
        return iter(loader)

    def feature_batches(self, batch_size: int) -> Iterator[Batch]:
        """The training set with the test transform; a smoke-run cap keeps the first batches."""
        return islice(self.feature_loader, -(-self.feature_count // self._eval_batch_size))

    def test_batches(self, batch_size: int) -> Iterator[Batch]:
        """The test set in file order; a smoke-run cap keeps the first batches."""
        return islice(self.test_loader, -(-self.test_count // self._eval_batch_size))

    def failures(self) -> Optional[dict[str, Any]]:
        """Images that failed to decode (each listed once) and samples skipped, for the record."""
        loaders = [*self._train.values(), self.feature_loader, self.test_loader]
        files: dict[str, str] = {}
        skipped = 0
        for loader in loaders:
            part = loader.failures.as_record()
            files.update({f["path"]: f["reason"] for f in part["files"]})
            skipped += part["skipped_samples"]
        if not files and not skipped:
            return None
        return {"files": [{"path": p, "reason": r} for p, r in files.items()], "skipped_samples": skipped}


Feed = Union[MemoryFeed, StreamFeed]


def make_feed(data: TrainingData, cfg: DatasetConfig, *, seed: int, device: torch.device, batch_size: int,
              eval_batch_size: int, workers: int = 0, sharding: Sharding = Sharding(), caps: Caps = Caps()) -> Feed:
    """The feed for ``data``: in memory for a :class:`LongTailedData`, streamed for a source."""
    if isinstance(data, LongTailedData):
        return MemoryFeed(data, seed=seed, device=device, sharding=sharding, caps=caps)
    return StreamFeed(data, cfg, seed=seed, device=device, batch_size=batch_size, eval_batch_size=eval_batch_size,
                      workers=workers, sharding=sharding, caps=caps)


def _shard_len(n: int, sharding: Sharding) -> int:
    lo, hi = eval_shard(n, sharding.world_size, sharding.rank)
    return hi - lo


def full_batches(num_train: int, batch_size: int) -> int:
    """Full global batches of ``batch_size`` in ``num_train`` images (incomplete ones are dropped)."""
    return num_batches(num_train, batch_size, drop_last=True)
