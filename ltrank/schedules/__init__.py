"""Weighting schedules (docs/method.md section 4): how much of a loss's class-balanced weights is in
force at each epoch. The weight formula itself lives with the losses
(:mod:`ltrank.losses.class_weights`); a loss consults its schedule at every epoch start."""

from ltrank.schedules.weighting import DeferredReweighting, Fixed, NoWeights, Progressive

__all__ = ["NoWeights", "Fixed", "Progressive", "DeferredReweighting"]
