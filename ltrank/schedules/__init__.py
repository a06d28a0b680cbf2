"""Class-balanced weights and the weighting schedules that hand them to a loss each epoch."""

from ltrank.schedules.class_weights import class_balanced_weights
from ltrank.schedules.schedules import DeferredReweighting, Fixed, NoWeights, Progressive

__all__ = ["class_balanced_weights", "NoWeights", "Fixed", "Progressive", "DeferredReweighting"]
