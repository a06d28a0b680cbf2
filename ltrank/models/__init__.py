"""Backbones: the CIFAR ResNet-32 and any timm model, each wrapped as a :class:`Classifier`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from ltrank.models.classifier import Classifier
from ltrank.models.heads import CosineHead, make_head
from ltrank.models.resnet_cifar import CifarResNetEncoder
from ltrank.models.timm_adapter import TimmParams, build_timm, check_timm_model
from ltrank.registry import Registry, Spec

__all__ = ["Classifier", "CosineHead", "CifarResNetEncoder", "resnet32", "register"]


class ResNetParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    head: Literal["linear", "cosine"] = Field(
        "linear", description="'linear' (64 -> C with bias) or 'cosine' (normalised, no bias; for LDAM)"
    )


def resnet32(num_classes: int, head: str = "linear") -> Classifier:
    """ResNet-32 of docs/method.md section 3 with a ``head`` classifier on the 64-d pooled features."""
    encoder = CifarResNetEncoder(blocks_per_stage=5)
    classifier = make_head(head, encoder.out_features, num_classes)
    if isinstance(classifier, nn.Linear):
        nn.init.kaiming_normal_(classifier.weight)  # as the reference code initialises Linear too
    return Classifier(encoder, classifier, encoder.out_features)


def register(registry: Registry) -> None:
    registry.register(
        "resnet32",
        Spec(resnet32, "ResNet-32 for 32x32 images, option-A shortcuts, ~0.46 M parameters (docs/method.md section 3)",
             params=ResNetParams, paper="He et al., Deep Residual Learning for Image Recognition, CVPR 2016"),
    )
    registry.register(
        "timm/",
        Spec(build_timm, "any timm model, e.g. timm/resnet18: timm's pooled features plus an ltrank head",
             params=TimmParams, paper="Wightman, PyTorch Image Models (timm)"),
        name_check=check_timm_model,  # an unknown timm model is refused when a recipe is validated
    )
