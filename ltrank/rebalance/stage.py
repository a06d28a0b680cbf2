"""What a classifier re-balancing stage (cRT, LWS) hands to the trainer."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ltrank.errors import LtrankError
from ltrank.models.classifier import Classifier


@dataclass
class StagePlan:
    """A model prepared for a re-balancing stage, and what the trainer must do with it.

    ``trainable`` are the only model parameters with ``requires_grad`` (give exactly these, plus
    the loss's own parameters, to the optimiser). ``frozen`` modules must stay in eval mode for
    the whole stage so that their BatchNorm running statistics do not move: call
    :meth:`train_mode` instead of ``model.train()`` before every epoch. ``sampler`` is the
    trainer's sampler name for the stage (class-balanced: ``ltrank.data.samplers``).
    """

    method: str  # "crt" or "lws"
    model: nn.Module
    trainable: list[nn.Parameter]
    frozen: list[nn.Module]
    sampler: str = "class_aware"

    def train_mode(self) -> None:
        """``model.train()``, then every frozen part back to eval mode."""
        self.model.train()
        for part in self.frozen:
            part.eval()


def check_classifier(model: nn.Module, method: str) -> None:
    """A one-line LtrankError unless ``model`` is a Classifier (``.encoder`` and ``.head``)."""
    if not isinstance(model, Classifier):
        raise LtrankError(
            f"{method} needs an ltrank Classifier (an .encoder and a .head), got {type(model).__name__}; "
            "build the model from a registered backbone"
        )


def freeze_except(model: nn.Module, trainable: list[nn.Parameter]) -> None:
    """``requires_grad`` True for the parameters in ``trainable``, False for every other one."""
    keep = {id(p) for p in trainable}
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)
