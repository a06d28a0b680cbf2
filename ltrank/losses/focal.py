"""Focal and Class-Balanced Focal losses (docs/method.md section 6), registered as ``focal`` / ``cb_focal``.

Under torch.distributed both divide by the global B (:func:`ltrank.distributed.global_batch`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from ltrank.distributed import global_batch
from ltrank.losses.base import ClassWeightedLoss
from ltrank.losses.functional.focal import focal_loss
from ltrank.registry import NEEDS_CLASS_WEIGHTS, USES_CLASS_WEIGHTS, Registry, Spec

FOCAL_PAPER = "Lin et al., Focal Loss for Dense Object Detection, ICCV 2017 (sigmoid form as in Zhang et al., Bag of Tricks for Long-Tailed Visual Recognition, AAAI 2021)"
CB_PAPER = "Cui et al., Class-Balanced Loss Based on Effective Number of Samples, CVPR 2019"

#: Bag of Tricks' CB Focal settings per long-tailed CIFAR variant (docs/method.md section 6).
#: Keys are ``<dataset>-ir<imbalance ratio>``; recipes state these values explicitly.
CB_FOCAL_CONFIGS: dict[str, dict[str, float]] = {
    "cifar10-ir100": {"beta": 0.9999, "gamma": 1.0},
    "cifar10-ir50": {"beta": 0.9999, "gamma": 2.0},
    "cifar100-ir100": {"beta": 0.9, "gamma": 1.0},
    "cifar100-ir50": {"beta": 0.99, "gamma": 1.0},
}


def _configs_text() -> str:
    return "; ".join(f"{k}: beta {v['beta']:g}, gamma {v['gamma']:g}" for k, v in CB_FOCAL_CONFIGS.items())


class FocalLoss(nn.Module):
    """Sigmoid focal loss over all one-hot entries, summed and divided by B; no alpha."""

    def __init__(self, class_counts: Sequence[int] | torch.Tensor, gamma: float = 2.0) -> None:
        super().__init__()  # class_counts: part of the loss contract; plain focal does not use them
        self.gamma = gamma

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits, targets = global_batch(logits, targets)
        return focal_loss(logits, targets, gamma=self.gamma)


class CBFocalLoss(ClassWeightedLoss):
    """Focal loss with each sample's row multiplied by its class's effective-number weight.

    Starts with the class-balanced weights in force (the ``fixed`` schedule's behaviour), so
    it is CB Focal out of the box; a schedule may hand other weights in.
    """

    def __init__(self, class_counts: Sequence[int] | torch.Tensor, beta: float = 0.9999, gamma: float = 1.0) -> None:
        super().__init__(class_counts, beta)
        self.gamma = gamma

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits, targets = global_batch(logits, targets)
        return focal_loss(logits, targets, gamma=self.gamma, class_weights=self.class_weights)


class FocalParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    gamma: float = Field(2.0, ge=0.0, description="focusing exponent of the modulating factor (Lin et al.: 2; 0 gives sigmoid BCE)")


class CBFocalParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    beta: float = Field(
        0.9999, ge=0.0, lt=1.0,
        description=f"effective-number beta of the class weights (Cui et al.). Bag of Tricks per dataset: {_configs_text()}",
    )
    gamma: float = Field(1.0, ge=0.0, description="focusing exponent; default = Bag of Tricks' CIFAR-10-LT IR100 setting")


def register(registry: Registry) -> None:
    registry.register(
        "focal",
        Spec(FocalLoss, "sigmoid focal loss over all B*C one-hot entries, summed / B, no alpha (Bag of Tricks' form)",
             params=FocalParams, paper=FOCAL_PAPER),
    )
    registry.register(
        "cb_focal",
        Spec(CBFocalLoss,
             "class-balanced focal: each sample's focal row times its class's effective-number weight; "
             "use with the 'fixed' schedule; Bag of Tricks' per-dataset beta/gamma are listed under beta",
             params=CBFocalParams, paper=f"{CB_PAPER}; {FOCAL_PAPER}",
             capabilities=frozenset({USES_CLASS_WEIGHTS, NEEDS_CLASS_WEIGHTS})),
    )
