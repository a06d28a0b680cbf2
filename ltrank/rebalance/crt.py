"""Classifier re-training (cRT) of Kang et al., "Decoupling Representation and Classifier for
Long-Tailed Recognition", ICLR 2020.

The encoder of a trained model is frozen (no gradients, and kept in eval mode so BatchNorm
statistics do not move either: the public code leaves BatchNorm in train mode, we do not); the
classifier is re-initialised at random and trained again for a few epochs with class-balanced
sampling. Schedules (public configs; docs/recipes.md "Decoupled training"): ImageNet-LT 10
epochs, SGD momentum 0.9, lr 0.2 cosine-annealed to 0, batch 512, weight decay 5e-4
(facebookresearch/classifier-balancing, config/ImageNet_LT/cls_crt.yaml); on CIFAR-LT ltrank
uses 10 epochs, lr 0.1 cosine to 0, batch 128, weight decay 2e-4, the classifier stage of
MiSLAS (Zhong et al., CVPR 2021, config/cifar*/..._stage2_mislas.yaml).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ltrank.errors import LtrankError
from ltrank.models.heads import CosineHead
from ltrank.rebalance.stage import StagePlan, check_classifier, freeze_except

#: Extra weight init a backbone applies to a fresh linear head after nn.Linear's own
#: (``ltrank.models.resnet32``: Kaiming-normal weight). Backbones not listed (``timm/...``,
#: plugins) keep nn.Linear's default. tests/test_rebalance_stages.py checks this against the
#: builders, draw for draw.
LINEAR_WEIGHT_INIT: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"resnet32": nn.init.kaiming_normal_}


def reinit_head(head: nn.Module, backbone: str) -> None:
    """Re-draw ``head``'s parameters in place as backbone ``backbone`` initialises a new head.

    Linear heads: ``nn.Linear.reset_parameters`` then the backbone's extra weight init
    (:data:`LINEAR_WEIGHT_INIT`); cosine heads: :meth:`CosineHead.reset_parameters`. Uses the
    global torch RNG (seeded by the trainer). Raises LtrankError for any other head.
    """
    if isinstance(head, CosineHead):
        head.reset_parameters()
    elif isinstance(head, nn.Linear):
        head.reset_parameters()
        extra = LINEAR_WEIGHT_INIT.get(backbone)
        if extra is not None:
            extra(head.weight)
    else:
        raise LtrankError(
            f"cRT re-initialises a linear or cosine head, but this model's head is {type(head).__name__}; "
            "start cRT from a model whose [model.params] head is 'linear' or 'cosine'"
        )


def prepare_crt(model: nn.Module, backbone: str) -> StagePlan:
    """Freeze ``model.encoder`` (eval mode), re-initialise ``model.head``; train only the head.

    ``model`` is a trained :class:`~ltrank.models.Classifier`, changed in place; ``backbone`` is
    its registry name (it decides the head's init, see :func:`reinit_head`). The returned plan
    says what the optimiser gets and that sampling is class-balanced.
    """
    check_classifier(model, "cRT")
    reinit_head(model.head, backbone)
    trainable = list(model.head.parameters())
    freeze_except(model, trainable)
    model.encoder.eval()
    return StagePlan("crt", model, trainable, frozen=[model.encoder])
