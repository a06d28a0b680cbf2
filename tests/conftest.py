"""Shared test setup: the offline data folder and deterministic torch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("LTRANK_DATA_DIR", str(REPO.parent / "shared" / "data"))
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def data_dir() -> Path:
    """The offline CIFAR pools; tests that need them skip with the reason when absent."""
    path = Path(os.environ["LTRANK_DATA_DIR"])
    if not (path / "cifar10-lt-pool.npz").is_file():
        pytest.skip(f"offline CIFAR pools not found in {path} (set LTRANK_DATA_DIR)")
    return path
