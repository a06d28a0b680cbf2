"""Shared test setup: the offline data folder and deterministic torch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("LTRANK_DATA_DIR", str(REPO.parent / "shared" / "data"))
# One intra-op thread: test tensors are tiny, and on a busy 2-core machine two spinning OpenMP
# threads make each tiny step take seconds. Results do not depend on the thread count.
torch.set_num_threads(1)


@pytest.fixture
def data_dir() -> Path:
    """The offline CIFAR pools; tests that need them skip with the reason when absent."""
    path = Path(os.environ["LTRANK_DATA_DIR"])
    if not (path / "cifar10-lt-pool.npz").is_file():
        pytest.skip(f"offline CIFAR pools not found in {path} (set LTRANK_DATA_DIR)")
    return path
