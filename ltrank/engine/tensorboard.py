"""TensorBoard scalars for a run (optional extra ``ltrank[tensorboard]``; ``--tensorboard DIR``).

One event file folder per run, ``DIR/<recipe>/<config hash>/seed<N>`` (the run folder's own
layout), so the runs of a sweep appear side by side in one ``tensorboard --logdir DIR``. Per epoch:
``train/loss``, ``train/accuracy`` (%), ``train/lr``, and when the epoch was evaluated
``test/top1`` plus ``test/<scheme>/<group>`` for every group scheme (Head/Body/Tail and
Many/Medium/Few; an empty group is skipped). A resumed run appends to the same folder; epochs are
the global step, so a resumed curve continues where it stopped.

It is an event consumer like the CLI's progress display: the trainer knows nothing about it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ltrank.engine.events import EpochEnded, Event, RunEnded
from ltrank.errors import LtrankError


def require_tensorboard() -> Any:
    """torch's SummaryWriter class; a one-line error naming the extra when tensorboard is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise LtrankError(
            "--tensorboard needs the tensorboard package; install it with: pip install \"ltrank[tensorboard]\""
        ) from None
    return SummaryWriter


class TensorBoardScalars:
    """Writes the scalars of one run's epochs into ``folder`` (created on the first epoch)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._writer_class = require_tensorboard()
        self._writer: Any = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, EpochEnded):
            self._epoch(event)
        elif isinstance(event, RunEnded):
            self.close()

    def _epoch(self, event: EpochEnded) -> None:
        if self._writer is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._writer = self._writer_class(log_dir=str(self.folder))
        write, step = self._writer.add_scalar, event.epoch
        write("train/loss", event.train_loss, step)
        write("train/accuracy", event.train_acc, step)
        write("train/lr", event.lr, step)
        if event.test_acc is not None:
            write("test/top1", event.test_acc, step)
        for scheme, groups in (event.groups or {}).items():
            for group, value in groups.items():
                if value is not None:
                    write(f"test/{scheme}/{group}", value, step)
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
