"""The training engine.

- :mod:`.run`: one run from start to end (folder, lock, record, checkpoints, signals, every
  ending); ``train_one`` is what ``ltrank train`` calls for each seed;
- :mod:`.trainer`: the loop itself (:class:`~ltrank.engine.trainer.Trainer`, usable from Python),
  and :mod:`.state`: what a run has achieved and how an epoch stops early;
- :mod:`.feeds`: what the loop reads, held in memory or streamed from disk;
- :mod:`.phases` (epochs, stages, learning rate), :mod:`.components` (model, losses, optimiser,
  freezing), :mod:`.device` (device, autocast, memory layout), :mod:`.parallel` and
  :mod:`.launch` (several processes), :mod:`.evaluation`, :mod:`.checkpoint` (the file and its
  random states), :mod:`.checkpoint_eval` and :mod:`.posthoc_records` (``ltrank eval``),
  :mod:`.events` (what training reports) and :mod:`.tensorboard` (one consumer of them),
  :mod:`.capped` (smoke-run caps that keep every class).
"""

from ltrank.engine.phases import lr_at
from ltrank.engine.run import train_one
from ltrank.engine.trainer import Trainer

__all__ = ["Trainer", "lr_at", "train_one"]
