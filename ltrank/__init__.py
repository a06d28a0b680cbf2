"""ltrank: ranking-based losses and baselines for long-tailed visual recognition."""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("ltrank")
except _metadata.PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+unknown"
