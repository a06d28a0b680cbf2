"""The AP-loss family of the thesis as ``nn.Module`` losses (docs/method.md sections 4-5).

* ``ap`` (:class:`APLoss`): AP Loss with the identity update, eqs. 3.5-3.11 and 3.20.
* ``ap_cb_delta`` (:class:`CBDeltaAPLoss`): CB Delta, section 3.2, eqs. 3.21-3.22: positive i
  uses the step width ``delta * w[y_i]`` ("multiply", the method) or ``delta / w[y_i]``
  ("divide", the thesis's ablation) in all of its comparisons.
* ``ap_cb_primary`` (:class:`CBPrimaryAPLoss`): CB Primary Term, section 3.3, eqs. 3.24-3.28:
  positive i's primary term and its gradients are scaled by ``w[y_i]``; the normaliser stays |P|.

``w`` are Cui et al.'s effective-number weights rescaled to sum to C
(:func:`ltrank.losses.class_balanced_weights`). The CB variants hold them in the
``class_weights`` buffer of :class:`~ltrank.losses.base.ClassWeightedLoss`, so the ``fixed`` and
``progressive`` (thesis eq. 4.1) weighting schedules can hand in the weights of each epoch; a
loss built without a schedule uses the full class-balanced weights.

Beta: the thesis does not state the beta of its effective-number weights, and CB Delta depends
on it strongly. Short reference runs on CIFAR-10-LT IR100 (30 epochs, one seed) showed beta 0.99
reproducing the thesis's pattern (tail about +15 points over AP, head flat), while 0.9999 erased
the tail gain and cost about 9 points of head accuracy; hence the default 0.99. Recipes state
beta explicitly.

"multiply" follows eqs. 3.21-3.22 (w is largest for the rarest class, so tail positives get the
larger delta), as sections 3.2 and 5 of the thesis describe; one sentence in its section 4.2
says the opposite and is not followed.

Distributed training (``scope``, docs/distributed.md): with ``"global"`` (default) each loss
ranks the logits of all ranks' samples together through :func:`ltrank.distributed.global_batch`
(the single-process loss and gradient, whatever the number of processes); ``"local"`` ranks each
process's slice alone, as public ranking-loss code does per GPU. Not distributed, both are the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from ltrank.distributed import global_batch
from ltrank.losses.base import ClassWeightedLoss
from ltrank.losses.functional.ap import Formulation, ap_loss
from ltrank.registry import NEEDS_CLASS_WEIGHTS, USES_CLASS_WEIGHTS, Registry, Spec

THESIS = "Using a Ranking-Based Loss for Long-Tailed Visual Recognition (METU thesis, 2024)"

#: Which rows an AP loss ranks under torch.distributed: all ranks' ("global") or its own ("local").
Scope = Literal["global", "local"]

_FORMULATION_HELP = (
    "'thesis': eqs. 3.5-3.11 as written (rank+ counts the positive itself with H(0) = 1/2, no "
    "interpolation); 'interpolated': the interpolated AP of the public Rank & Sort / aLRP code "
    "(rank+ = 1 + others, running max of precision, kappa-scaled negative gradients)"
)
_DELTA_HELP = "step width of the piecewise-linear step H(x) = clip(x / (2 delta) + 1/2, 0, 1), eq. 3.5"
_SCOPE_HELP = (
    "under torch.distributed: 'global' ranks the logits of all processes' samples together (the "
    "single-process result for any number of processes); 'local' ranks each process's slice alone "
    "(per-GPU ranking, as public ranking-loss code does); identical when not distributed"
)
_BETA_HELP = (
    "effective-number beta of the class weights w_c = (1 - beta) / (1 - beta^n_c), rescaled to sum C; "
    "not stated in the thesis: 0.99 reproduced its CB Delta pattern on CIFAR-10-LT IR100, 0.9999 did not"
)


class APLoss(nn.Module):
    """AP Loss with the identity update (thesis eqs. 3.5-3.11, 3.20; docs/method.md section 5).

    ``loss(logits, targets)`` ranks all B*C logits of the batch globally: each image's true-class
    logit is a positive and every other logit a negative. ``class_counts`` is accepted (and
    ignored) so that every loss is built the same way. ``scope``: see the module docstring.
    """

    def __init__(
        self,
        class_counts: Sequence[int] | torch.Tensor | None = None,
        delta: float = 1.0,
        formulation: Formulation = "thesis",
        scope: Scope = "global",
    ) -> None:
        super().__init__()
        self.delta = delta
        self.formulation = formulation
        self.scope = scope

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits, targets = _ranked_batch(logits, targets, self.scope)
        return ap_loss(logits, targets, delta=self.delta, formulation=self.formulation)

    def extra_repr(self) -> str:
        return f"delta={self.delta}, formulation={self.formulation!r}, scope={self.scope!r}"


class CBDeltaAPLoss(ClassWeightedLoss):
    """CB Delta (thesis section 3.2, eqs. 3.21-3.22): a class-dependent step width.

    Positive i uses ``delta_i = delta * w[y_i]`` (``mode="multiply"``: rare classes, with the
    larger weights, get the wider step) or ``delta / w[y_i]`` (``"divide"``, the ablation) in all
    of its comparisons. ``w`` is the ``class_weights`` buffer (the weights in force). "multiply"
    follows eqs. 3.21-3.22, not the one sentence of thesis section 4.2 that says the opposite.
    beta is not stated in the thesis; 0.99 (default) reproduced its tail gain, 0.9999 did not.
    """

    def __init__(
        self,
        class_counts: Sequence[int] | torch.Tensor,
        delta: float = 1.0,
        beta: float = 0.99,
        mode: Literal["multiply", "divide"] = "multiply",
        formulation: Formulation = "thesis",
        scope: Scope = "global",
    ) -> None:
        super().__init__(class_counts, beta)
        self.delta = delta
        self.mode = mode
        self.formulation = formulation
        self.scope = scope

    def class_deltas(self) -> torch.Tensor:
        """The [C] step widths in force: ``delta * w`` or ``delta / w``."""
        if self.mode == "multiply":
            return self.delta * self.class_weights
        return self.delta / self.class_weights

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits, targets = _ranked_batch(logits, targets, self.scope)
        return ap_loss(logits, targets, delta=self.class_deltas(), formulation=self.formulation)

    def extra_repr(self) -> str:
        return (f"delta={self.delta}, beta={self.beta}, mode={self.mode!r}, formulation={self.formulation!r}, "
                f"scope={self.scope!r}")


class CBPrimaryAPLoss(ClassWeightedLoss):
    """CB Primary Term (thesis section 3.3, eqs. 3.24-3.28): class-weighted primary terms.

    Positive i's primary term l(i) is scaled by ``w[y_i]`` and so are its identity-update
    gradients (eq. 3.24: ``L_ij = w_i H(x_ij) / rank(i)``); the loss is still divided by |P|
    (eq. 3.25), not by the sum of the weights. beta is not stated in the thesis (default 0.99).
    """

    def __init__(
        self,
        class_counts: Sequence[int] | torch.Tensor,
        delta: float = 1.0,
        beta: float = 0.99,
        formulation: Formulation = "thesis",
        scope: Scope = "global",
    ) -> None:
        super().__init__(class_counts, beta)
        self.delta = delta
        self.formulation = formulation
        self.scope = scope

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits, targets = _ranked_batch(logits, targets, self.scope)
        return ap_loss(
            logits, targets, delta=self.delta, class_weights=self.class_weights, formulation=self.formulation
        )

    def extra_repr(self) -> str:
        return f"delta={self.delta}, beta={self.beta}, formulation={self.formulation!r}, scope={self.scope!r}"


def _ranked_batch(logits: torch.Tensor, targets: torch.Tensor, scope: Scope) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows to rank: all ranks' (``"global"``, see :func:`global_batch`) or this rank's own."""
    if scope == "global":
        return global_batch(logits, targets)  # type: ignore[return-value]
    return logits, targets


class APParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    delta: float = Field(1.0, gt=0.0, allow_inf_nan=False, description=_DELTA_HELP)
    formulation: Formulation = Field("thesis", description=_FORMULATION_HELP)
    scope: Scope = Field("global", description=_SCOPE_HELP)


class CBDeltaParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    delta: float = Field(1.0, gt=0.0, allow_inf_nan=False, description=_DELTA_HELP + "; scaled per class by the class weights")
    beta: float = Field(0.99, ge=0.0, lt=1.0, description=_BETA_HELP)
    mode: Literal["multiply", "divide"] = Field(
        "multiply",
        description="'multiply': delta_i = delta * w_c for a positive of class c, rare classes get the wider "
        "step (the thesis's method, eqs. 3.21-3.22); 'divide': delta_i = delta / w_c (its ablation)",
    )
    formulation: Formulation = Field("thesis", description=_FORMULATION_HELP)
    scope: Scope = Field("global", description=_SCOPE_HELP)


class CBPrimaryParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    delta: float = Field(1.0, gt=0.0, allow_inf_nan=False, description=_DELTA_HELP)
    beta: float = Field(0.99, ge=0.0, lt=1.0, description=_BETA_HELP)
    formulation: Formulation = Field("thesis", description=_FORMULATION_HELP)
    scope: Scope = Field("global", description=_SCOPE_HELP)


def register(registry: Registry) -> None:
    weighted = frozenset({USES_CLASS_WEIGHTS, NEEDS_CLASS_WEIGHTS})
    registry.register(
        "ap",
        Spec(APLoss, "AP Loss with the identity update over the batch's global ranking of all B*C logits "
             "(thesis eqs. 3.5-3.11, 3.20); exact O(BC log B) kernel", params=APParams, paper=THESIS),
    )
    registry.register(
        "ap_cb_delta",
        Spec(CBDeltaAPLoss, "AP Loss with CB Delta: class-dependent step width delta * w or delta / w "
             "(thesis section 3.2, eqs. 3.21-3.22); weights follow the fixed or progressive schedule; "
             "beta is not stated in the thesis (0.99 reproduced its pattern on CIFAR-10-LT IR100, 0.9999 did not)",
             params=CBDeltaParams, paper=THESIS, capabilities=weighted),
    )
    registry.register(
        "ap_cb_primary",
        Spec(CBPrimaryAPLoss, "AP Loss with CB Primary Term: each positive's primary term scaled by its "
             "class weight, normaliser |P| (thesis section 3.3, eqs. 3.24-3.28); weights follow the "
             "fixed or progressive schedule; beta is not stated in the thesis",
             params=CBPrimaryParams, paper=THESIS, capabilities=weighted),
    )
