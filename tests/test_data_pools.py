"""The workplace's real offline pools, read from $LTRANK_DATA_DIR as the README says (default
../shared/data, set by conftest.py); skipped with the reason where they are absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ltrank.data import DatasetConfig, load_longtailed
from ltrank.errors import LtrankError

SHARED = Path(os.environ["LTRANK_DATA_DIR"])  # conftest.py fills in the README's default
# sha256 values published in the pools' README
SHA256 = {
    "cifar10": "10719b0a0c36a47138f79bb4d4a97708db3d8424a4fb2758937f8432f15e0db9",
    "cifar100": "ed3a4a2f2389838c39a3d4314262b406e57b5dd3d278a3da83f6833b06dded0b",
}

pytestmark = pytest.mark.skipif(not (SHARED / "cifar10-lt-pool.npz").is_file(),
                                reason=f"offline CIFAR pools not found in {SHARED} (set LTRANK_DATA_DIR)")


@pytest.fixture(scope="module")
def cifar10_ir100():
    return load_longtailed(DatasetConfig(source="cifar10", imbalance_ratio=100), data_dir=SHARED)


def test_cifar10_pool_ir100(cifar10_ir100):
    data = cifar10_ir100
    assert data.class_counts == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert data.train_images.shape == (12406, 3, 32, 32) and data.test_images.shape == (10000, 3, 32, 32)
    assert data.train_labels.bincount().tolist() == data.class_counts
    assert data.test_labels.bincount().tolist() == [1000] * 10
    assert data.class_names[0] == "airplane" and data.class_names[9] == "truck"
    assert data.source.kind == "npz" and data.source.fingerprint == SHA256["cifar10"]
    assert "27 JPEG-derived" in data.source.note
    assert data.manifest.selection_rule == "shuffle-source-ranks"


def test_cifar10_pool_is_deterministic_and_matches_env_resolution(cifar10_ir100, monkeypatch):
    monkeypatch.setenv("LTRANK_DATA_DIR", str(SHARED))
    again = load_longtailed(DatasetConfig(source="cifar10", imbalance_ratio=100))
    assert again.manifest == cifar10_ir100.manifest


def test_cifar100_pool_ir50_and_step_profile_needs_the_full_set():
    data = load_longtailed(DatasetConfig(source="cifar100", imbalance_ratio=50), data_dir=SHARED)
    assert sum(data.class_counts) == 12608 and data.class_counts[-1] == 10
    assert data.source.fingerprint == SHA256["cifar100"] and "JPEG" not in data.source.note
    assert data.test_labels.bincount().tolist() == [100] * 100
    # the pool is an IR-10 exponential tail: class 1 holds 488 images, a step profile needs 500
    with pytest.raises(LtrankError, match=r"class 1 \('aquarium_fish'\) needs 500 training images but the source holds 488"):
        load_longtailed(DatasetConfig(source="cifar100", imbalance_ratio=10, profile="step"), data_dir=SHARED)


def test_cifar10_pool_split_holds_every_reference_image_the_pool_has(cifar10_ir100):
    import numpy as np

    with np.load(SHARED / "cifar10-lt-pool.npz") as pool:
        ranks, labels = pool["train_source_rank"], pool["train_labels"]
    pool_sizes = np.bincount(labels)
    np.random.seed(0)  # the reference loop on full CIFAR-10 (5000 per class), in within-class positions
    shared = 0
    for c, n_c in enumerate(cifar10_ir100.class_counts):
        positions = np.arange(5000)
        np.random.shuffle(positions)
        reference = {int(p) for p in positions[:n_c] if p < pool_sizes[c]}
        chosen = {int(ranks[row]) for row in cifar10_ir100.manifest.selected_indices[c]}
        assert reference <= chosen and len(chosen) == n_c
        shared += len(reference)
    assert shared == 9350  # the figure quoted in docs/data.md
