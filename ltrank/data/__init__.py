"""Long-tailed datasets: sources, the docs/method.md section 1 construction, batched augmentation, and the
large list-based sources streamed from disk (splitfiles, streaming, memory)."""

from ltrank.data import batches
from ltrank.data.config import DatasetConfig, SourceInfo, SplitManifest
from ltrank.data.dataset import LongTailedData, build_longtailed, load_longtailed
from ltrank.data.memory import StreamDecision, decide_streaming
from ltrank.data.sources import DATA_DIR_ENV, default_data_dir, resolve_data_dir
from ltrank.data.splitfiles import StreamSource, open_stream_source
from ltrank.data.streaming import StreamLoader, make_loader

__all__ = [
    "DATA_DIR_ENV",
    "DatasetConfig",
    "LongTailedData",
    "SourceInfo",
    "SplitManifest",
    "StreamDecision",
    "StreamLoader",
    "StreamSource",
    "batches",
    "build_longtailed",
    "decide_streaming",
    "default_data_dir",
    "load_longtailed",
    "make_loader",
    "open_stream_source",
    "resolve_data_dir",
]
