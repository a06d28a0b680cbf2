"""Learnable weight scaling (LWS) of Kang et al., "Decoupling Representation and Classifier for
Long-Tailed Recognition", ICLR 2020.

Encoder and classifier stay as trained (frozen, eval mode); one scale per class, initialised to
1, multiplies that class's logit (bias included, as the public code's ``fc(x) * scales``) and is
the only thing trained, with class-balanced sampling. Public ImageNet-LT config
(facebookresearch/classifier-balancing, config/ImageNet_LT/cls_lws.yaml): 5 epochs, SGD momentum
0.9, lr 0.2 cosine to 0, batch 512, weight decay 5e-4 (applied to the scales too).
"""

from __future__ import annotations

import torch
from torch import nn

from ltrank.errors import LtrankError
from ltrank.rebalance.stage import StagePlan, check_classifier, freeze_except


class LearnableWeightScaling(nn.Module):
    """Wraps a head: logits [B, C] = ``head(features)`` times ``scales`` [C] (float32, init 1)."""

    def __init__(self, head: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.head = head
        weight = next(head.parameters(), None)
        device = weight.device if weight is not None else None
        self.scales = nn.Parameter(torch.ones(num_classes, device=device))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features) * self.scales


def prepare_lws(model: nn.Module) -> StagePlan:
    """Replace ``model.head`` by :class:`LearnableWeightScaling` around it; train only the scales.

    ``model`` (a trained Classifier) is changed in place; its state dict then holds
    ``head.head.*`` and ``head.scales``, so a checkpoint of an LWS stage loads into a model
    wrapped the same way. Raises LtrankError when the head does not say its ``out_features``.
    """
    check_classifier(model, "LWS")
    num_classes = getattr(model.head, "out_features", None)
    if not isinstance(num_classes, int):
        raise LtrankError(
            f"LWS needs a head that states its number of classes (out_features); {type(model.head).__name__} "
            "does not; use a 'linear' or 'cosine' head"
        )
    inner = model.head
    model.head = LearnableWeightScaling(inner, num_classes)
    trainable = [model.head.scales]
    freeze_except(model, trainable)
    model.encoder.eval()
    inner.eval()
    return StagePlan("lws", model, trainable, frozen=[model.encoder, inner])
