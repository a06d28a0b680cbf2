"""Cross-entropy (docs/method.md section 6), optionally class-weighted."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from ltrank.distributed import global_batch
from ltrank.losses.base import ClassWeightedLoss
from ltrank.registry import USES_CLASS_WEIGHTS, Registry, Spec


class CrossEntropyLoss(ClassWeightedLoss):
    """Mean cross-entropy; with class weights (CB-CE, DRW) PyTorch's weighted mean.

    Weighted mean convention: ``sum_b w_{y_b} * ce_b / sum_b w_{y_b}`` (not divided by B).
    Weights are used only when ``weighted=True`` or a schedule hands new ones in; the default
    weighting schedule for ``ce`` is ``none`` so plain CE is the default. Under torch.distributed
    the mean and its sum of weights run over the global batch (:func:`~ltrank.distributed.global_batch`).
    """

    def __init__(self, class_counts: Sequence[int] | torch.Tensor, beta: float = 0.9999, weighted: bool = False) -> None:
        super().__init__(class_counts, beta)
        if not weighted:
            self.class_weights.fill_(1.0)
        self.weighted = weighted

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits, targets = global_batch(logits, targets)
        logits = logits if logits.dtype == torch.float64 else logits.float()  # bf16/fp16 -> float32
        return F.cross_entropy(logits, targets, weight=self.class_weights.to(logits))


class CEParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    beta: float = Field(0.9999, ge=0.0, lt=1.0, description="effective-number beta of the class weights a schedule may apply (DRW uses 0.9999)")
    weighted: bool = Field(False, description="start with class-balanced weights (CB-CE) before any schedule speaks")


def register(registry: Registry) -> None:
    registry.register(
        "ce",
        Spec(CrossEntropyLoss, "cross-entropy; class weights (CB-CE / DRW) use PyTorch's weighted mean",
             params=CEParams, capabilities=frozenset({USES_CLASS_WEIGHTS}),
             paper="class weights: Cui et al., Class-Balanced Loss Based on Effective Number of Samples, CVPR 2019; "
                   "DRW: Cao et al., Learning Imbalanced Datasets with Label-Distribution-Aware Margin Loss, NeurIPS 2019"),
    )
