"""ltrank: ranking-based losses and baselines for long-tailed visual recognition.

The data flow, one package or module per step: a recipe (:mod:`ltrank.recipe`) -> the data
(:mod:`ltrank.data`) -> the model (:mod:`ltrank.models`) -> the loss and its weighting schedule
(:mod:`ltrank.losses`, :mod:`ltrank.schedules`) -> the engine (:mod:`ltrank.engine`: a run from
start to end, the training loop, evaluation) -> the run folder and its record
(:mod:`ltrank.run_folder`, :mod:`ltrank.records`) -> tables (:mod:`ltrank.compare`). Around
it: registries and plugins (:mod:`ltrank.registry`, :mod:`ltrank.catalog`), many runs
(:mod:`ltrank.sweep`), several processes (:mod:`ltrank.distributed`), second-stage re-balancing
(:mod:`ltrank.rebalance`), and the command line (:mod:`ltrank.cli`).
"""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("ltrank")
except _metadata.PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+unknown"
