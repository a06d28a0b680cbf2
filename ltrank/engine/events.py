"""What the trainer reports while it runs. The trainer never prints: it hands these events to a
callback, and the CLI (or a notebook, or a test) decides how to show them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional, Union


@dataclass(frozen=True)
class RunStarted:
    seed: int
    start_epoch: int  # 1 for a fresh run, later for a resumed one
    total_epochs: int
    batches_per_epoch: int
    device: str


@dataclass(frozen=True)
class EpochStarted:
    epoch: int
    total_epochs: int
    lr: float
    batches: int


@dataclass(frozen=True)
class BatchEnded:
    epoch: int
    batch: int  # 1-indexed
    batches: int
    loss: float


@dataclass(frozen=True)
class EpochEnded:
    epoch: int
    total_epochs: int
    lr: float
    train_loss: float
    train_acc: float  # percent
    test_acc: Optional[float]  # percent; None when this epoch was not evaluated
    seconds: float
    #: scheme -> group -> test accuracy (%) when evaluated (None for an empty group), e.g. for TensorBoard
    groups: Optional[dict[str, dict[str, Optional[float]]]] = None


@dataclass(frozen=True)
class EvalStarted:
    """The test pass after an epoch begins (``eval.every``; ``images`` < the test set when
    ``eval.max_batches`` caps it)."""

    epoch: int
    images: int
    batches: int


@dataclass(frozen=True)
class EvalEnded:
    epoch: int
    top1: float  # percent
    seconds: float


@dataclass(frozen=True)
class FeaturePassStarted:
    """A loss's epoch hook reads the training set through the model before the epoch (DRO-LT's
    class centroids); ``images`` < the training set when ``train.max_batches_per_epoch`` caps it."""

    epoch: int
    images: int
    batches: int


@dataclass(frozen=True)
class FeaturePassEnded:
    epoch: int
    seconds: float


@dataclass(frozen=True)
class PassProgress:
    """One more batch of the test pass or feature pass in progress is done."""

    batch: int  # 1-indexed
    batches: int


@dataclass(frozen=True)
class RunEnded:
    seed: int
    status: str  # the run record's status: finished, diverged, failed, interrupted
    final_top1: Optional[float]
    best_top1: Optional[float]
    best_epoch: Optional[int]
    reason: Optional[str] = None  # one line, for every status but finished


@dataclass(frozen=True)
class Notice:
    """Something the user should read (which run a run started from, a cleaned-up temp file)."""

    message: str


Event = Union[RunStarted, EpochStarted, BatchEnded, EpochEnded, EvalStarted, EvalEnded, FeaturePassStarted,
              FeaturePassEnded, PassProgress, RunEnded, Notice]
Callback = Callable[[Event], None]


def ignore(event: Event) -> None:
    """The default callback: drop every event."""
