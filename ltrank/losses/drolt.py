"""DRO-LT feature-stage loss (docs/method.md section 6), registered as ``drolt``.

Weighted CE plus the distributionally robust centroid loss, with learnable per-class radii
(an ``nn.Parameter`` of the loss: the trainer adds loss parameters to the optimiser) and class
centroids recomputed by :meth:`DROLTLoss.epoch_start` before every epoch.

Under torch.distributed the loss is computed on the global batch
(:func:`ltrank.distributed.global_batch`: the CE weights' sum and the batch-wise softmax of the
centroid term span all ranks' samples), and the centroids sum the features of all ranks.
The radii are used directly, not through the gathered rows: every rank computes the same global
loss, so every rank gets the single-process gradient of the radii (whether or not it is averaged).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from ltrank.distributed import all_reduce_max, all_reduce_sum, global_batch
from ltrank.errors import LtrankError
from ltrank.losses.base import EpochContext
from ltrank.losses.functional.drolt import drolt_loss
from ltrank.registry import NEEDS_FEATURES, NEEDS_INIT_FROM, Registry, Spec
from ltrank.losses.class_weights import as_class_counts

DROLT_PAPER = "Samuel & Chechik, Distributional Robustness Loss for Long-tail Learning, ICCV 2021"


class DROLTLoss(nn.Module):
    """``CE(logits, y; w_c = n_c / n_max) + drolt_loss(features, y, centroids, radii)``."""

    centroids: torch.Tensor | None

    def __init__(
        self,
        class_counts: Sequence[int] | torch.Tensor,
        temperature: float = 1.0,
        ce_weighting: Literal["count_ratio", "none"] = "count_ratio",
    ) -> None:
        super().__init__()
        counts = as_class_counts(class_counts)
        if counts.max() <= 0:
            raise ValueError("class_counts must have at least one class with training images")
        self.temperature = temperature
        self.ce_weighting = ce_weighting
        ce_weights = counts / counts.max() if ce_weighting == "count_ratio" else torch.ones_like(counts)
        self.register_buffer("ce_weights", ce_weights.float(), persistent=False)
        self.radii = nn.Parameter(torch.ones(counts.numel()))
        self.register_buffer("centroids", None, persistent=False)

    @property
    def num_classes(self) -> int:
        return int(self.radii.numel())

    @torch.no_grad()
    def epoch_start(self, ctx: EpochContext) -> None:
        """Class centroids = mean pooled feature per class over one pass, model in eval mode.

        Classes with no image in the pass get a zero centroid; their rows never enter the loss
        because such a class never appears as a target. Under torch.distributed the per-class
        sums and counts are summed over the ranks, each having passed over its shard of the
        training set (ranks that all pass over the whole set give the same centroids too).
        """
        if ctx.model is None or ctx.feature_batches is None:
            raise ValueError("drolt computes class centroids from the model: give EpochContext a model and feature_batches")
        model = ctx.model
        was_training = model.training
        model.eval()
        sums: torch.Tensor | None = None
        counts = torch.zeros(self.num_classes, dtype=torch.float64, device=ctx.device)
        try:
            for images, targets in ctx.feature_batches():
                _, features = model(images, return_features=True)
                if sums is None:
                    sums = torch.zeros(self.num_classes, features.shape[1], dtype=torch.float64, device=ctx.device)
                targets = targets.to(ctx.device)
                sums.index_add_(0, targets, features.to(device=ctx.device, dtype=torch.float64))
                counts += torch.bincount(targets, minlength=self.num_classes).to(counts.dtype)
        finally:
            model.train(was_training)
        # One rank's shard may be empty: it learns the feature width from the others.
        width = int(all_reduce_max(torch.tensor([0 if sums is None else sums.shape[1]], device=ctx.device)))
        if width == 0:
            raise LtrankError("DRO-LT found no training batches to compute class centroids; check the training set")
        if sums is None:
            sums = torch.zeros(self.num_classes, width, dtype=torch.float64, device=ctx.device)
        sums, counts = all_reduce_sum(sums), all_reduce_sum(counts)
        self.centroids = (sums / counts.clamp_min(1).unsqueeze(1)).float()

    def forward(self, logits: torch.Tensor, targets: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        if features is None:
            raise ValueError("drolt needs the pooled features: call loss(logits, targets, features=features)")
        if self.centroids is None:
            raise RuntimeError("drolt has no class centroids yet: call loss.epoch_start(ctx) before the epoch")
        logits, targets, features = global_batch(logits, targets, features)
        weight = self.ce_weights.to(logits.device)
        ce = F.cross_entropy(logits.float(), targets, weight=weight)
        dro = drolt_loss(features, targets, self.centroids.to(features.device), self.radii, temperature=self.temperature)
        return ce + dro


class DROLTParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    temperature: float = Field(1.0, gt=0.0, description="divides the centroid scores before the batch-wise log-softmax (docs/method.md: 1.0)")
    ce_weighting: Literal["count_ratio", "none"] = Field(
        "count_ratio",
        description="class weights of the CE term: 'count_ratio' = n_c / n_max (docs/method.md / DRO-LT code), 'none' = plain CE",
    )


def register(registry: Registry) -> None:
    registry.register(
        "drolt",
        Spec(DROLTLoss,
             "DRO-LT feature stage: CE weighted by n_c/n_max + distributionally robust centroid loss with learnable "
             "per-class radii (init 1); centroids recomputed each epoch; radii aligned with each sample's own class",
             params=DROLTParams, paper=DROLT_PAPER,
             capabilities=frozenset({NEEDS_FEATURES, NEEDS_INIT_FROM})),
    )
