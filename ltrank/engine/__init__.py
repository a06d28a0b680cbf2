"""The training engine: learning-rate schedule, components, loop, evaluation, checkpoints, runs.

``train_one`` (in :mod:`ltrank.engine.run`) is what ``ltrank train`` calls for each seed;
:class:`~ltrank.engine.trainer.Trainer` is the loop itself, usable from Python with data already
in memory.
"""

from ltrank.engine.phases import lr_at
from ltrank.engine.run import train_one
from ltrank.engine.trainer import Trainer

__all__ = ["Trainer", "lr_at", "train_one"]
