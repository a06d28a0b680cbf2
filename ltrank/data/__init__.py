"""Long-tailed datasets: sources, the docs/method.md section 1 construction, batched augmentation."""

from ltrank.data import batches
from ltrank.data.config import DatasetConfig, SourceInfo, SplitManifest
from ltrank.data.dataset import LongTailedData, build_longtailed, load_longtailed
from ltrank.data.sources import DATA_DIR_ENV, default_data_dir, resolve_data_dir

__all__ = [
    "DATA_DIR_ENV",
    "DatasetConfig",
    "LongTailedData",
    "SourceInfo",
    "SplitManifest",
    "batches",
    "build_longtailed",
    "default_data_dir",
    "load_longtailed",
    "resolve_data_dir",
]
