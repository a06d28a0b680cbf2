"""Hold a source in memory or stream it from disk?

CIFAR and npz image sets are always held in memory (the batched in-memory path is faster there);
the list-based sources (``imagenet_lt``, ``places_lt``, ``inat2018``, ``splitfile``) always
stream. A ``folder:`` source is held in memory when its decoded images fit in
``data.memory_budget_mb`` and all have one size (what the in-memory reader needs), and streamed
otherwise. The decision depends only on the recipe and the files, never on the machine's free
memory, so one recipe trains the same way everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ltrank.data.config import STREAM_KINDS, DatasetConfig, source_kind
from ltrank.data.images import readable_suffixes
from ltrank.data.sources import _user_path, resolve_data_dir

MIB = 1 << 20


@dataclass(frozen=True)
class SizeEstimate:
    """Decoded size of the images read so far (uint8 RGB: width * height * 3 bytes each)."""

    bytes: int
    images: int  # headers read
    complete: bool  # False: stopped early, ``bytes`` already exceeded the limit
    one_size: bool  # every header read gave the same width and height


@dataclass(frozen=True)
class StreamDecision:
    """Whether a source streams, and why (one line, for the record and ``--dry-run``)."""

    stream: bool
    reason: str
    estimate: SizeEstimate | None = None


def estimate_decoded_bytes(files: Iterable[Path], stop_above: int | None = None) -> SizeEstimate:
    """Sum ``width * height * 3`` over ``files`` from their headers (Pillow reads no pixels).

    Stops as soon as the sum exceeds ``stop_above``. Files Pillow cannot identify are left out:
    whichever path reads them later reports them.
    """
    from PIL import Image, UnidentifiedImageError

    total, count, sizes = 0, 0, set()
    for file in files:
        try:
            with Image.open(file) as handle:
                width, height = handle.size
        except (OSError, UnidentifiedImageError):
            continue
        total += width * height * 3
        count += 1
        sizes.add((width, height))
        if stop_above is not None and total > stop_above:
            return SizeEstimate(total, count, False, len(sizes) == 1)
    return SizeEstimate(total, count, True, len(sizes) <= 1)


def folder_images(root: Path) -> Iterable[Path]:
    """The image files of ``root/train/*/`` and ``root/test/*/`` (sorted), as the folder readers see them."""
    for split in ("train", "test"):
        split_dir = root / split
        if not split_dir.is_dir():
            continue
        for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            yield from sorted(p for p in class_dir.iterdir() if p.suffix.lower() in readable_suffixes())


def decide_streaming(cfg: DatasetConfig, data_dir: Path | str | None = None) -> StreamDecision:
    """Stream ``cfg.source`` from disk, or hold it in memory (module docstring for the rule)."""
    kind = source_kind(cfg.source)
    if kind in STREAM_KINDS:
        return StreamDecision(True, f"{kind} sources are read from their split lists and streamed from disk")
    if kind != "folder":
        return StreamDecision(False, f"{cfg.source} is held in memory")
    root = _user_path(cfg.source.partition(":")[2], resolve_data_dir(data_dir))
    budget = int(cfg.memory_budget_mb * MIB)
    estimate = estimate_decoded_bytes(folder_images(root), stop_above=budget)
    if not estimate.complete:
        return StreamDecision(
            True,
            f"{root}: the decoded images need more than data.memory_budget_mb = {cfg.memory_budget_mb:g} MiB; "
            "streamed from disk",
            estimate,
        )
    if not estimate.one_size:
        return StreamDecision(True, f"{root}: the images differ in size; streamed from disk (resized per sample)",
                              estimate)
    return StreamDecision(
        False, f"{root}: {estimate.images} images, {estimate.bytes / MIB:.1f} MiB decoded; held in memory", estimate
    )
