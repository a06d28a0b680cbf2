"""LDAM and LDAM-DRW (docs/method.md section 6), registered as ``ldam``.

LDAM-DRW is ``ldam`` with the ``drw`` weighting schedule; plain LDAM uses the ``none`` schedule.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from pydantic import BaseModel, ConfigDict, Field

from ltrank.distributed import global_batch
from ltrank.losses.base import ClassWeightedLoss
from ltrank.losses.functional.ldam import ldam_loss_from_margins, ldam_margins
from ltrank.registry import NEEDS_COSINE_HEAD, USES_CLASS_WEIGHTS, Registry, Spec

LDAM_PAPER = "Cao et al., Learning Imbalanced Datasets with Label-Distribution-Aware Margin Loss, NeurIPS 2019"


class LDAMLoss(ClassWeightedLoss):
    """``CE(s * (cos - m_y onehot(y)), y)`` on cosine logits, weights from the schedule (DRW).

    Unweighted until a schedule hands weights in (``weighted=False``, like ``ce``): with the
    ``none`` schedule it is LDAM, with ``drw`` it is LDAM-DRW. Under torch.distributed the
    (weighted) mean runs over the global batch (:func:`~ltrank.distributed.global_batch`).
    """

    def __init__(
        self,
        class_counts: Sequence[int] | torch.Tensor,
        max_m: float = 0.5,
        s: float = 30.0,
        beta: float = 0.9999,
        weighted: bool = False,
    ) -> None:
        super().__init__(class_counts, beta)
        if not weighted:
            self.class_weights.fill_(1.0)
        self.max_m, self.s, self.weighted = max_m, s, weighted
        self.register_buffer("margins", ldam_margins(class_counts, max_m).float(), persistent=False)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits, targets = global_batch(logits, targets)
        return ldam_loss_from_margins(logits, targets, margins=self.margins, s=self.s, class_weights=self.class_weights)


class LDAMParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    max_m: float = Field(0.5, gt=0.0, description="margin of the rarest class; m_c = max_m * (n_c / n_min)^(-1/4) (Cao et al.: 0.5)")
    s: float = Field(30.0, gt=0.0, description="scale applied to the margin-shifted cosine logits (Cao et al.: 30)")
    beta: float = Field(0.9999, ge=0.0, lt=1.0, description="effective-number beta of the class weights the 'drw' schedule applies (Cao et al.: 0.9999)")
    weighted: bool = Field(False, description="start with class-balanced weights before any schedule speaks (normally left off)")


def register(registry: Registry) -> None:
    registry.register(
        "ldam",
        Spec(LDAMLoss,
             "label-distribution-aware margin loss on a cosine head; LDAM-DRW = ldam + the 'drw' schedule, "
             "plain LDAM = ldam + 'none'",
             params=LDAMParams, paper=LDAM_PAPER,
             capabilities=frozenset({NEEDS_COSINE_HEAD, USES_CLASS_WEIGHTS})),
    )
