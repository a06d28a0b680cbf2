"""Loss functions for long-tailed classification, usable in any PyTorch training loop.

Every loss is an ``nn.Module`` called as ``loss(logits, targets)`` (DRO-LT also takes
``features=``) and constructed with its hyperparameters plus ``class_counts`` (training images
per class). Class-balanced variants compute their weights with :func:`class_balanced_weights`
and take the weights in force from a weighting schedule through their one epoch hook,
``loss.epoch_start(EpochContext(...))`` (:mod:`ltrank.losses.base`).
"""

from ltrank.losses.ap import APLoss, CBDeltaAPLoss, CBPrimaryAPLoss
from ltrank.losses.base import ClassWeightedLoss, EpochContext
from ltrank.losses.ce import CrossEntropyLoss
from ltrank.losses.drolt import DROLTLoss
from ltrank.losses.focal import CB_FOCAL_CONFIGS, CBFocalLoss, FocalLoss
from ltrank.losses.ldam import LDAMLoss
from ltrank.losses.class_weights import as_class_counts, class_balanced_weights

__all__ = ["ClassWeightedLoss", "EpochContext", "CrossEntropyLoss", "FocalLoss", "CBFocalLoss", "CB_FOCAL_CONFIGS", "LDAMLoss", "DROLTLoss", "APLoss", "CBDeltaAPLoss", "CBPrimaryAPLoss", "as_class_counts", "class_balanced_weights"]
