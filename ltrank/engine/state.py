"""What one training run has achieved, and the two ways an epoch stops early.

:class:`TrainState` is the progress a checkpoint carries as plain data; :class:`Diverged` and
:class:`Interrupted` are raised by the trainer at a batch boundary and turned into a recorded
ending by :mod:`ltrank.engine.run`; :func:`check_scalar` refuses a loss that does not return one
number.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch

from ltrank.errors import LtrankError


class Diverged(Exception):
    """The loss or the logits became NaN or infinite; the epoch was abandoned."""

    def __init__(self, epoch: int, batch: int, value: float, elsewhere: bool = False) -> None:
        what = f"loss became {value}" if not np.isfinite(value) else f"logits became non-finite (loss {value:.4g})"
        if elsewhere:  # distributed: this process's numbers were fine
            what = "the loss or the logits of another process became non-finite"
        super().__init__(f"{what} at epoch {epoch}, batch {batch}")
        self.epoch, self.batch, self.value = epoch, batch, value


class Interrupted(Exception):
    """A stop was requested (Ctrl-C, SIGTERM); the epoch in progress was abandoned."""

    def __init__(self, epoch: int, batch: int) -> None:
        super().__init__(f"stopped during epoch {epoch}, batch {batch}")
        self.epoch, self.batch = epoch, batch


@dataclass
class TrainState:
    """What a run has achieved so far; saved in checkpoints as plain data."""

    epoch: int = 0  # last finished epoch
    history: list[dict[str, Any]] = field(default_factory=list)  # results.EpochStats as dicts
    final: Optional[dict[str, Any]] = None  # results.Metrics as a dict
    best: Optional[dict[str, Any]] = None
    train_seconds: float = 0.0
    eval_seconds: float = 0.0


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def check_scalar(value: torch.Tensor, loss_name: str) -> None:
    """A loss must return one number; a per-sample vector would be silently summed by backward."""
    if not isinstance(value, torch.Tensor) or value.ndim != 0 or not value.is_floating_point():
        shape = f"{value.dtype} {list(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__
        raise LtrankError(
            f"loss {loss_name!r} returned {shape}; a loss must return a float scalar (e.g. reduce per-sample "
            "values with .mean())"
        )
