"""Streaming images from disk: one decoded sample per ``Dataset`` item, a ``DataLoader`` with
worker processes, and the standard ImageNet augmentation from torchvision transforms v2.

Determinism. The data order of an epoch is a permutation drawn from ``(seed, epoch)``, and every
sample's random crop, flip and jitter from ``(seed, epoch, index)``: the sampler yields
``(index, epoch)`` keys and the worker that decodes a sample seeds the transform from its key.
Batches are therefore the same for any number of workers, in any scheduling, and a run resumed
at epoch k sees exactly the epoch k of an uninterrupted run (``set_epoch(k)``), with no generator
state to save.

Images that cannot be read or decoded do not stop an epoch: the sample is dropped from its batch
in :func:`collate_skipping` (so that batch is smaller; a batch whose samples all fail is not
yielded), and :class:`DecodeFailures` lists each failing file once and counts every skipped
draw, for the CLI to show and the run record to keep.

Workers output uint8 crops, collated straight into shared memory; the loader moves the uint8
batch (pinned on CUDA: four times less to copy than float32) to the device and normalises it
there with the ImageNet mean and std, one fused multiply-add per pixel for the whole batch.
Normalising in the workers instead was measured slower on the CPU: float32 crops make the
collate and the copy between processes four times larger (benchmarks/stream_speed.py).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler, default_collate

from ltrank.data.config import DEFAULT_IMAGE_SIZE, DatasetConfig
from ltrank.data.samplers import class_aware_indices
from ltrank.data.splitfiles import SplitList, StreamSource
from ltrank.errors import LtrankError

#: ImageNet per-channel statistics (torchvision's pretrained models, Kang et al. 2020).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Stream tags that keep the order and the augmentation draws independent for one seed.
_ORDER_STREAM = 1
_AUGMENT_STREAM = 2


def image_size_of(cfg: DatasetConfig) -> int:
    """The crop side of streamed images: ``data.image_size``, else 224."""
    return cfg.image_size or DEFAULT_IMAGE_SIZE


def eval_resize(image_size: int) -> int:
    """Shorter side before the centre crop: 256 for 224, in the same 256/224 proportion otherwise."""
    return image_size * 256 // 224


# ----------------------------------------------------------------------------- decoding
def decode_rgb8(path: str | Path) -> torch.Tensor:
    """Read and decode one image file as uint8 [3, H, W] RGB, as an image viewer shows it.

    JPEG (most of ImageNet-LT, Places-LT, iNaturalist) goes through torchvision.io's decoder, the
    fastest here, with the EXIF orientation applied; every other format goes through Pillow and
    :func:`ltrank.data.images.to_rgb8`, the one place that maps image modes to 8-bit RGB (alpha
    over white, 16-bit scaled). Raises OSError (missing or unreadable file, Pillow cannot identify
    it) or RuntimeError / ValueError (corrupt data, a mode without a faithful 8-bit view).
    """
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0:
        raise ValueError("empty file")
    decode = _torchvision_jpeg_decoder()
    if decode is not None and data[:2].tobytes() == _JPEG_MAGIC:
        try:
            return decode(torch.from_numpy(data))
        except RuntimeError:
            pass  # e.g. a JPEG variant libjpeg here cannot read: Pillow may
    return _decode_with_pil(path)


_JPEG_MAGIC = b"\xff\xd8"


@functools.lru_cache(maxsize=None)
def _torchvision_jpeg_decoder() -> Callable[[torch.Tensor], torch.Tensor] | None:
    """torchvision.io's decoder, RGB mode, EXIF orientation applied (deprecated since torchvision
    0.29 in favour of TorchCodec, still the fastest here); None where a torchvision lacks it."""
    try:
        from torchvision.io import ImageReadMode, decode_jpeg
    except ImportError:
        return None
    return functools.partial(decode_jpeg, mode=ImageReadMode.RGB, apply_exif_orientation=True)


def _decode_with_pil(path: str | Path) -> torch.Tensor:
    from PIL import Image

    from ltrank.data.images import to_rgb8

    try:
        with Image.open(path) as handle:
            array = to_rgb8(handle)
    except (Image.DecompressionBombError, LtrankError) as exc:  # not OSErrors: decode failures too
        raise ValueError(str(exc)) from None
    return torch.from_numpy(np.array(array)).permute(2, 0, 1).contiguous()  # a writable copy


# ----------------------------------------------------------------------------- transforms
def train_transform(image_size: int, color_jitter: float = 0.0) -> Callable[[torch.Tensor], torch.Tensor]:
    """RandomResizedCrop(image_size) (scale 0.08..1, ratio 3/4..4/3, antialiased), horizontal flip
    with p = 0.5, then ColorJitter(brightness, contrast, saturation = color_jitter) when > 0.
    uint8 [3, H, W] in, uint8 [3, image_size, image_size] out; randomness from torch's default
    generator (seeded per sample by :class:`StreamingDataset`)."""
    from torchvision.transforms import v2

    steps: list[Any] = [v2.RandomResizedCrop(image_size, antialias=True), v2.RandomHorizontalFlip()]
    if color_jitter > 0:
        steps.append(v2.ColorJitter(brightness=color_jitter, contrast=color_jitter, saturation=color_jitter))
    return v2.Compose(steps)


def eval_transform(image_size: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Resize the shorter side to ``image_size * 256 // 224`` (antialiased), then CenterCrop(image_size)."""
    from torchvision.transforms import v2

    return v2.Compose([v2.Resize(eval_resize(image_size), antialias=True), v2.CenterCrop(image_size)])


def normalize_imagenet(images: torch.Tensor) -> torch.Tensor:
    """uint8 [B, 3, H, W] -> float32 ``(x / 255 - mean) / std`` (ImageNet statistics), same device.

    Computed as ``x * (1 / (255 std)) + (-mean / std)``: two passes instead of four, equal to
    the written-out formula within float32 rounding.
    """
    scale, shift = _constants(images.device)
    return images.float().mul_(scale).add_(shift)


@functools.lru_cache(maxsize=None)
def _constants(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``1 / (255 std)`` and ``-mean / std`` as [1, 3, 1, 1] float32 tensors, made once per device."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float64).view(1, 3, 1, 1)
    return (1.0 / (255.0 * std)).float().to(device), (-mean / std).float().to(device)


def mix_seed(*words: int) -> int:
    """A 63-bit seed from integers in 0..2**64-1: BLAKE2b of their 8-byte little-endian forms, so
    nearby inputs (index 7, index 8) give unrelated seeds, the same on every platform. About 5 us
    (numpy's SeedSequence, the other candidate, took about 45 us per sample)."""
    data = b"".join(word.to_bytes(8, "little") for word in words)
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little") >> 1


# ----------------------------------------------------------------------------- dataset
@dataclass(frozen=True)
class Failure:
    """A sample that could not be read or decoded."""

    index: int  # position in its split
    path: str  # the file, as given to the decoder
    reason: str  # one line


class StreamingDataset(Dataset):
    """Map-style dataset over one split: item ``key`` -> ``(image uint8 [3, S, S], label, index)``,
    or a :class:`Failure` when the file cannot be decoded.

    ``key`` is an index (no randomness: the evaluation transform) or ``(index, epoch)``: the random
    transform is then seeded from ``(seed, epoch, index)``, whichever process decodes it.
    """

    def __init__(self, root: Path | str, split: SplitList, transform: Callable[[torch.Tensor], torch.Tensor],
                 seed: int = 0) -> None:
        self.root = str(root)
        self.split = split
        self.transform = transform
        self.seed = seed

    def __len__(self) -> int:
        return len(self.split)

    def path(self, index: int) -> str:
        return str(Path(self.root) / self.split.path(index))

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int, int] | Failure:
        index, epoch = key if isinstance(key, tuple) else (key, None)
        path = self.path(index)
        try:
            image = decode_rgb8(path)
        except (OSError, RuntimeError, ValueError) as exc:
            return Failure(index, path, _first_line(exc))
        if epoch is None:
            out = self.transform(image)
        else:
            out = self._seeded(image, mix_seed(self.seed, epoch, index, _AUGMENT_STREAM))
        return out, int(self.split.labels[index]), index

    def _seeded(self, image: torch.Tensor, seed: int) -> torch.Tensor:
        """Apply the transform with torch's default generator seeded, then restore its state
        (the main process's stream is untouched when there are no workers)."""
        generator = torch.default_generator
        saved = generator.get_state()
        generator.manual_seed(seed)
        try:
            return self.transform(image)
        finally:
            generator.set_state(saved)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


# ----------------------------------------------------------------------------- batches
@dataclass
class StreamBatch:
    """A collated batch: the decoded samples and the failures dropped from it."""

    images: torch.Tensor  # uint8 [B, 3, S, S] (B = 0 when every sample failed)
    labels: torch.Tensor  # int64 [B]
    indices: torch.Tensor  # int64 [B], positions in the split
    failures: list[Failure] = field(default_factory=list)

    def pin_memory(self) -> "StreamBatch":
        """Called by the DataLoader's pinning thread (CUDA only)."""
        return StreamBatch(self.images.pin_memory(), self.labels.pin_memory(), self.indices.pin_memory(),
                           self.failures)


def collate_skipping(samples: Sequence[tuple[torch.Tensor, int, int] | Failure]) -> StreamBatch:
    """Stack the decoded samples (``default_collate``: in a worker, straight into shared memory);
    failures are dropped from the batch and carried beside it."""
    good = [s for s in samples if not isinstance(s, Failure)]
    failures = [s for s in samples if isinstance(s, Failure)]
    if not good:
        empty = torch.empty(0, dtype=torch.int64)
        return StreamBatch(torch.empty(0, 3, 0, 0, dtype=torch.uint8), empty, empty.clone(), failures)
    return StreamBatch(
        default_collate([s[0] for s in good]),
        torch.tensor([s[1] for s in good], dtype=torch.int64),
        torch.tensor([s[2] for s in good], dtype=torch.int64),
        failures,
    )


class EpochSampler(Sampler[tuple[int, int]]):
    """Keys ``(index, epoch)`` of one epoch, in an order drawn from ``(seed, epoch)`` alone.

    ``class_aware``: the draws of :func:`ltrank.data.samplers.class_aware_indices` (uniform class,
    then uniform image, with replacement; as many as the split has images) instead of a
    permutation. Call :meth:`set_epoch` before each epoch (1-indexed, as the trainer counts).
    """

    def __init__(self, labels: np.ndarray | torch.Tensor, seed: int, class_aware: bool = False) -> None:
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
        self.seed = seed
        self.class_aware = class_aware
        self.epoch = 1

    def set_epoch(self, epoch: int) -> None:
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = epoch

    def order(self) -> torch.Tensor:
        """This epoch's indices (int64)."""
        generator = torch.Generator().manual_seed(mix_seed(self.seed, self.epoch, _ORDER_STREAM))
        n = len(self.labels)
        if self.class_aware:
            return class_aware_indices(self.labels, n, generator)
        return torch.randperm(n, generator=generator)

    def __len__(self) -> int:
        return len(self.labels)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        return iter([(i, epoch) for i in self.order().tolist()])


class DecodeFailures:
    """Files that failed to decode, each listed once, and the number of samples skipped."""

    def __init__(self) -> None:
        self.listed: dict[str, Failure] = {}
        self.skipped = 0

    def add(self, failures: Sequence[Failure]) -> list[Failure]:
        """Count ``failures``; return those whose file was not listed before."""
        new = []
        for failure in failures:
            self.skipped += 1
            if failure.path not in self.listed:
                self.listed[failure.path] = failure
                new.append(failure)
        return new

    def as_record(self) -> dict[str, Any]:
        """Plain data for the run record: files (path, reason) and skipped draws."""
        return {
            "files": [{"path": f.path, "reason": f.reason} for f in self.listed.values()],
            "skipped_samples": self.skipped,
        }


# ----------------------------------------------------------------------------- the loader
class StreamLoader:
    """A DataLoader over a :class:`StreamingDataset` that yields ``(x, y)`` on ``device``:
    x float32 [B, 3, S, S] normalised with the ImageNet statistics, y int64 [B].

    Training loaders (``train=True``) draw keys from an :class:`EpochSampler` and drop the last
    incomplete batch; evaluation loaders visit the split in order and keep every sample. Worker
    processes are persistent; memory is pinned when the device is CUDA.
    """

    def __init__(self, dataset: StreamingDataset, *, batch_size: int, train: bool, seed: int,
                 num_workers: int, device: torch.device | str, class_aware: bool = False,
                 prefetch_factor: int = 2) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        self.dataset = dataset
        self.device = torch.device(device)
        self.train = train
        self.sampler: EpochSampler | None = (
            EpochSampler(dataset.split.labels, seed, class_aware=class_aware) if train else None
        )
        keys: Sampler[Any] | range = self.sampler if self.sampler is not None else range(len(dataset))
        self.batch_sampler = BatchSampler(keys, batch_size, drop_last=train)  # type: ignore[arg-type]
        self.failures = DecodeFailures()
        self._new: list[Failure] = []
        self.loader = DataLoader(
            dataset,
            batch_sampler=self.batch_sampler,
            num_workers=num_workers,
            collate_fn=collate_skipping,
            pin_memory=self.device.type == "cuda",
            persistent_workers=num_workers > 0,
            prefetch_factor=prefetch_factor if num_workers > 0 else None,
            # the loader draws its workers' base seed from this, not from torch's global generator
            generator=torch.Generator().manual_seed(mix_seed(seed, 0, _ORDER_STREAM)),
        )

    def __len__(self) -> int:
        """Batches per epoch (before dropping failed samples)."""
        return len(self.batch_sampler)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (1-indexed) whose order and augmentation the next pass yields."""
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for batch in self.loader:
            self._new += self.failures.add(batch.failures)
            if len(batch.labels) == 0:
                continue
            x = batch.images.to(self.device, non_blocking=True)
            y = batch.labels.to(self.device, non_blocking=True)
            yield normalize_imagenet(x), y

    def new_failures(self) -> list[Failure]:
        """Failures first seen since the last call (each file once over the loader's life)."""
        new, self._new = self._new, []
        return new


def make_loader(source: StreamSource, split: str, cfg: DatasetConfig, *, seed: int, batch_size: int,
                num_workers: int, device: torch.device | str, train: bool | None = None,
                class_aware: bool = False) -> StreamLoader:
    """A :class:`StreamLoader` over ``source``'s ``split`` ('train', 'val' or 'test').

    ``train`` (default: ``split == 'train'``) chooses the random training transform, the seeded
    epoch order and drop_last; otherwise the evaluation transform (:func:`eval_transform`) in file order. Image size and colour
    jitter come from ``cfg`` (``data.image_size``, ``data.color_jitter``). Raises LtrankError for a
    split the source does not have.
    """
    chosen = source.splits.get(split)
    if chosen is None:
        have = ", ".join(source.splits)
        raise LtrankError(f"{source.name}: no {split!r} split (it has {have})")
    train = split == "train" if train is None else train
    size = image_size_of(cfg)
    transform = train_transform(size, cfg.color_jitter) if train else eval_transform(size)
    dataset = StreamingDataset(source.root, chosen, transform, seed=seed)
    return StreamLoader(dataset, batch_size=batch_size, train=train, seed=seed, num_workers=num_workers,
                        device=device, class_aware=class_aware)

