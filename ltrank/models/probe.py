"""One forward pass before training, so a backbone that cannot take the data fails in one line.

Recipe validation catches what it can without the data (an unknown timm model, a fixed-input-size
model on CIFAR). Everything else a model may refuse only shows on real input: images too small
for its downsampling (Inception v3 at 32x32), windows that do not divide the feature map (MaxViT,
EfficientFormer at 32x32), any input size for a fixed-size model on a user's own images. The
engine calls :func:`check_backbone_input` once after building the model and loading the data.
"""

from __future__ import annotations

import torch
from torch import nn

from ltrank.errors import LtrankError


def check_backbone_input(model: nn.Module, image_shape: tuple[int, int, int], num_classes: int, backbone: str) -> None:
    """Run two blank images of ``image_shape`` (C, H, W) through ``model``; refuse what fails.

    The model runs in eval mode under ``no_grad`` (BatchNorm statistics and parameters are left
    untouched) on the device of its parameters, and must return logits [2, ``num_classes``].

    Raises:
        LtrankError: one line naming the backbone, the image size, what failed and the fix.
    """
    channels, height, width = image_shape
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits = model(torch.zeros(2, channels, height, width, device=device))
    except Exception as exc:  # a shape/assertion error from deep inside the model: say it in one line
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no message'}"
        hint = ""
        if backbone.startswith("timm/") and height == width:
            hint = f" (a ViT- or Swin-like model may fit with [model.params] img_size = {height})"
        raise LtrankError(
            f"model.backbone: {backbone} cannot take {height}x{width} images ({reason}); pick a model that "
            f"accepts that size{hint}, or resize the images"
        ) from None
    finally:
        model.train(was_training)
    if tuple(logits.shape) != (2, num_classes):
        raise LtrankError(
            f"model.backbone: {backbone} returned logits of shape {list(logits.shape)} for 2 images of "
            f"{height}x{width}, expected [2, {num_classes}]; its encoder must return pooled features [B, D]"
        )
