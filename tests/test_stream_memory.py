"""Hold in memory or stream (issue 13): the size estimate and the decision, and a ``folder:`` source
above the memory budget streams."""

from __future__ import annotations

import pytest
import torch

from _datafakes import write_folder
from _streamfakes import write_jpeg
from ltrank.data import DatasetConfig, decide_streaming, make_loader, open_stream_source
from ltrank.data.memory import MIB, estimate_decoded_bytes, folder_images

pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")


def test_estimate_reads_headers_and_can_stop_early(tmp_path):
    sizes = [(10, 20), (30, 40), (5, 7)]  # (height, width)
    files = []
    for i, size in enumerate(sizes):
        write_jpeg(tmp_path / f"{i}.jpg", i, size)
        files.append(tmp_path / f"{i}.jpg")
    (tmp_path / "junk.jpg").write_bytes(b"junk")  # left out: whoever decodes it reports it
    full = estimate_decoded_bytes(files + [tmp_path / "junk.jpg"])
    assert full.bytes == sum(h * w * 3 for h, w in sizes) and full.images == 3
    assert full.complete and not full.one_size
    early = estimate_decoded_bytes(files, stop_above=10 * 20 * 3)
    assert not early.complete and early.images == 2 and early.bytes == 600 + 3600


def test_small_folder_of_one_size_stays_in_memory(tmp_path):
    write_folder(tmp_path / "pets", {"cat": (3, 1), "dog": (2, 1)}, size=(6, 5))
    decision = decide_streaming(DatasetConfig(source=f"folder:{tmp_path / 'pets'}", profile="asis"))
    assert not decision.stream and "held in memory" in decision.reason
    assert decision.estimate.bytes == 7 * 6 * 5 * 3 and decision.estimate.images == 7


def test_folder_above_the_memory_budget_streams(tmp_path):
    root = tmp_path / "pets"
    write_folder(root, {"cat": (3, 1), "dog": (2, 1)}, size=(32, 32))
    budget_mb = 4 * 32 * 32 * 3 / MIB  # room for four of the seven images
    cfg = DatasetConfig(source=f"folder:{root}", profile="asis", memory_budget_mb=budget_mb, image_size=16)
    decision = decide_streaming(cfg)
    assert decision.stream and "data.memory_budget_mb" in decision.reason
    assert not decision.estimate.complete and decision.estimate.images == 5
    # ... and it streams: lists, loader, batches
    source = open_stream_source(cfg)
    assert source.class_counts == [3, 2] and source.class_names == ["cat", "dog"]
    loader = make_loader(source, "train", cfg, seed=0, batch_size=5, num_workers=0, device="cpu")
    loader.set_epoch(1)
    (x, y), = list(loader)
    assert x.shape == (5, 3, 16, 16) and sorted(y.tolist()) == [0, 0, 0, 1, 1]
    assert torch.isfinite(x).all()


def test_folder_of_mixed_sizes_streams(tmp_path):
    root = tmp_path / "mixed"
    write_jpeg(root / "train" / "a" / "0.jpg", 0, (10, 12))
    write_jpeg(root / "train" / "b" / "0.jpg", 1, (14, 9))
    write_jpeg(root / "test" / "a" / "0.jpg", 2, (10, 12))
    write_jpeg(root / "test" / "b" / "0.jpg", 3, (10, 12))
    assert len(list(folder_images(root))) == 4
    decision = decide_streaming(DatasetConfig(source=f"folder:{root}", profile="asis"))
    assert decision.stream and "differ in size" in decision.reason


@pytest.mark.parametrize("source, stream", [
    ("imagenet_lt:/nowhere", True), ("places_lt:/nowhere", True), ("inat2018:/nowhere", True),
    ("splitfile:a.txt,b.txt", True), ("cifar10", False), ("cifar100", False), ("npz:/nowhere.npz", False),
])
def test_the_kind_decides_for_other_sources_without_reading_files(source, stream):
    assert decide_streaming(DatasetConfig(source=source, profile="asis")).stream is stream
