"""Weighting schedules (docs/method.md section 4): the per-class weights in force at epoch t of T.

A schedule never computes class-balanced weights itself: the loss owns its ``target`` weights
(from its beta and the class counts) and the schedule says how much of them applies at epoch t.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from pydantic import BaseModel, ConfigDict, Field

from ltrank.registry import EPOCH_PARAM, Registry, Spec


def _check(epoch: int, total_epochs: int) -> None:
    if total_epochs < 1 or not 0 <= epoch <= total_epochs:
        raise ValueError(f"epoch must be in [0, {total_epochs}], got {epoch}")


@dataclass(frozen=True)
class NoWeights:
    """All ones: the loss runs unweighted."""

    def weights(self, epoch: int, total_epochs: int, target: torch.Tensor) -> torch.Tensor:
        _check(epoch, total_epochs)
        return torch.ones_like(target)


@dataclass(frozen=True)
class Fixed:
    """The target (class-balanced) weights from the first epoch on."""

    def weights(self, epoch: int, total_epochs: int, target: torch.Tensor) -> torch.Tensor:
        _check(epoch, total_epochs)
        return target.clone()


@dataclass(frozen=True)
class Progressive:
    """Thesis eq. 4.1: ``w(t) = (1 - t/T) * 1 + (t/T) * w_target``, recomputed every epoch."""

    def weights(self, epoch: int, total_epochs: int, target: torch.Tensor) -> torch.Tensor:
        _check(epoch, total_epochs)
        frac = epoch / total_epochs
        return (1.0 - frac) * torch.ones_like(target) + frac * target


@dataclass(frozen=True)
class DeferredReweighting:
    """LDAM-DRW: ones before ``start_epoch``, the target weights from it on.

    Unlike the reference code (which indexes a two-element list with ``epoch // 160``), any
    number of epochs is safe.
    """

    start_epoch: int = 161

    def weights(self, epoch: int, total_epochs: int, target: torch.Tensor) -> torch.Tensor:
        _check(epoch, total_epochs)
        return target.clone() if epoch >= self.start_epoch else torch.ones_like(target)


class DRWParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    start_epoch: int = Field(
        161, ge=1, json_schema_extra=EPOCH_PARAM,
        description="first epoch (1-indexed) that uses the class-balanced weights; at most train.epochs",
    )


def register(registry: Registry) -> None:
    registry.register("none", Spec(NoWeights, "all-ones weights: the loss runs unweighted"))
    registry.register("fixed", Spec(Fixed, "the loss's class-balanced weights from the first epoch on"))
    registry.register(
        "progressive",
        Spec(Progressive, "linear blend from all ones (t=0) to the class-balanced weights (t=T), thesis eq. 4.1",
             paper="Using a Ranking-Based Loss for Long-Tailed Visual Recognition (METU thesis, 2024)"),
    )
    registry.register(
        "drw",
        Spec(DeferredReweighting, "deferred re-weighting: ones, then class-balanced weights from start_epoch",
             params=DRWParams, paper="Cao et al., Learning Imbalanced Datasets with LDAM Loss, NeurIPS 2019"),
    )
