"""ltrank plugin: Balanced Softmax and logit-adjusted CE, exposed as ``ltrank.losses.v1`` entry points.

Each entry point names one :class:`ltrank.registry.Spec` below; ltrank imports this module only
when one of the two names is first needed.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ltrank.registry import NoParams, Spec
from ltrank_logit_adjust.losses import BalancedSoftmaxLoss, LogitAdjustedLoss

__version__ = "0.1.0"


class LogitAdjustedParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tau: float = Field(
        1.0, ge=0.0,
        description="scale of the log-prior added to the logits (Menon et al.: 1.0; 0 gives plain CE)",
    )


BALANCED_SOFTMAX = Spec(
    BalancedSoftmaxLoss,
    "Balanced Softmax: cross-entropy on logits + log n_c (training-time prior correction)",
    params=NoParams,
    paper="Ren et al., Balanced Meta-Softmax for Long-Tailed Visual Recognition, NeurIPS 2020",
)

LOGIT_ADJUSTED = Spec(
    LogitAdjustedLoss,
    "logit-adjusted cross-entropy: CE on logits + tau * log(n_c / sum n); tau = 1 equals Balanced Softmax",
    params=LogitAdjustedParams,
    paper="Menon et al., Long-tail learning via logit adjustment, ICLR 2021",
)

__all__ = ["BALANCED_SOFTMAX", "LOGIT_ADJUSTED", "BalancedSoftmaxLoss", "LogitAdjustedLoss", "LogitAdjustedParams"]
