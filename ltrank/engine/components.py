"""Building what a resolved recipe names: model, losses, weighting schedule, optimiser.

Each training phase (see :mod:`ltrank.engine.phases`) gets its own loss object (a stage may override
the recipe's loss) and its own optimiser over the parameters that phase trains, plus the
loss's own parameters (e.g. DRO-LT's radii). Parameters outside the phase are frozen; a cRT or
LWS phase prepares the model first (:func:`prepare_phase`, ``ltrank.rebalance``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from ltrank.engine.phases import Phase
from ltrank.rebalance.crt import prepare_crt
from ltrank.rebalance.lws import prepare_lws
from ltrank.rebalance.spec import PosthocSpec
from ltrank.recipe import POSTHOC_METHODS, LossConfig, Recipe
from ltrank.registry import NEEDS_FEATURES, Spec


@dataclass
class PhaseLoss:
    """A loss object with the capability flags the trainer acts on."""

    name: str
    module: nn.Module
    spec: Spec

    @property
    def needs_features(self) -> bool:
        return self.spec.has(NEEDS_FEATURES)


def build_model(recipe: Recipe, num_classes: int) -> nn.Module:
    from ltrank.catalog import BACKBONES

    return BACKBONES.build(recipe.model.backbone, num_classes=num_classes, **recipe.model.params)


def build_loss(config: LossConfig, class_counts: Sequence[int]) -> PhaseLoss:
    from ltrank.catalog import LOSSES

    module = LOSSES.build(config.name, class_counts=list(class_counts), **config.params)
    return PhaseLoss(config.name, module, LOSSES.get(config.name))


def build_phase_losses(recipe: Recipe, phases: Sequence[Phase], class_counts: Sequence[int]) -> list[PhaseLoss]:
    """One loss per phase: the stage's override, else the recipe's ``[loss]``."""
    return [
        build_loss(p.stage.loss if p.stage is not None and p.stage.loss is not None else recipe.loss, class_counts)
        for p in phases
    ]


def build_schedule(recipe: Recipe) -> object:
    from ltrank.catalog import SCHEDULES

    return SCHEDULES.build(recipe.schedule.name, **recipe.schedule.params)


def freeze_for_phase(model: nn.Module, which: str) -> list[nn.Module]:
    """Set ``requires_grad`` for the phase; return the frozen submodules (kept in eval mode)."""
    parts = {"all": [], "encoder": [model.head], "head": [model.encoder]}[which]
    for p in model.parameters():
        p.requires_grad_(True)
    for part in parts:
        for p in part.parameters():
            p.requires_grad_(False)
    return parts


def phase_method(phase: Phase) -> str:
    """The phase's stage method: ``train`` for the protocol phase and plain stages, else crt, lws, ..."""
    return "train" if phase.stage is None else phase.stage.method


def prepare_phase(model: nn.Module, phase: Phase, backbone: str) -> list[nn.Module]:
    """Make ``model`` ready for ``phase`` (in place); return the parts frozen for the whole phase.

    ``train``: :func:`freeze_for_phase` with the stage's ``trainable``; ``crt``: the head is
    re-drawn and only it trains (:func:`~ltrank.rebalance.prepare_crt`); ``lws``: the head is
    wrapped by per-class scales, the only thing that trains (:func:`~ltrank.rebalance.prepare_lws`;
    the model's state-dict keys change, so a checkpoint of an LWS phase loads only after this).
    """
    method = phase_method(phase)
    if method == "crt":
        return prepare_crt(model, backbone).frozen
    if method == "lws":
        return prepare_lws(model).frozen
    trainable = phase.stage.trainable if phase.stage is not None else None
    return freeze_for_phase(model, trainable or "all")


def posthoc_stage(recipe: Recipe) -> Optional[PosthocSpec]:
    """The adjustment of a recipe whose one stage is post-hoc (resolution allows no other place), else None."""
    stages = recipe.train.stages
    if len(stages) == 1 and stages[0].method in POSTHOC_METHODS:
        return PosthocSpec(stages[0].method, stages[0].tau)  # type: ignore[arg-type]
    return None


def build_optimizer(model: nn.Module, loss: nn.Module, phase: Phase, recipe: Recipe) -> torch.optim.SGD:
    """SGD (Nesterov) over the model's unfrozen parameters and the loss's parameters.

    Weight decay applies to every parameter (docs/method.md section 3), the loss's included.
    """
    train = recipe.train
    weight_decay = phase.stage.weight_decay if phase.stage is not None else train.weight_decay
    params = [p for p in model.parameters() if p.requires_grad]  # see freeze_for_phase
    params += [p for p in loss.parameters() if p.requires_grad]
    return torch.optim.SGD(
        params, lr=train.lr, momentum=train.momentum, nesterov=train.nesterov and train.momentum > 0,
        weight_decay=weight_decay,
    )
