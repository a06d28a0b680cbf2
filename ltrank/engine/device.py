"""Device choice and the numerics/layout that go with it, shared by training and evaluation.

- ``--device`` is ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA when available); anything else
  is a one-line error before any work starts.
- CUDA runs in bf16 autocast (the loss is always computed in float32 or float64); the CPU stays
  float32 so that a resumed run is bit-identical to an uninterrupted one.
- Images and models use the channels_last memory layout on every device: convolutions are
  faster in it on CUDA (cuDNN) and on this project's reference CPU too (a ResNet-32 step of 128
  images about 12-25 % faster, ``benchmarks/train_speed.py``). The layout does not change what is
  computed beyond float rounding of the convolution kernels chosen.
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager, nullcontext

import torch
from torch import nn

from ltrank.errors import LtrankError

DEVICE_CHOICES = "cpu, cuda, cuda:N or auto"
_DEVICE = re.compile(r"^(cpu|auto|cuda(:\d+)?)$")


def resolve_device(name: str) -> torch.device:
    """The torch device for ``--device``; one-line :class:`LtrankError` for anything unusable."""
    name = name.strip().lower()
    if not _DEVICE.match(name):
        raise LtrankError(f"--device {name!r}: not a device ltrank trains on; use {DEVICE_CHOICES}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise LtrankError(f"--device {name}: no CUDA device is available here; use --device cpu or auto")
        device = torch.device(name)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise LtrankError(
                f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s) "
                f"(cuda:0..cuda:{torch.cuda.device_count() - 1})"
            )
        return device
    return torch.device("cpu")


def device_label(device: torch.device) -> str:
    """``cpu`` or ``cuda:0 (NVIDIA H200)``: what run records store."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def prepare_backend(device: torch.device) -> None:
    """Process-wide settings for ``device`` (cuDNN picks its fastest kernels for fixed shapes)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def autocast_for(device: torch.device) -> AbstractContextManager:
    """bf16 autocast on CUDA, nothing (float32) elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def to_model_layout(x: torch.Tensor) -> torch.Tensor:
    """An image batch [B, 3, H, W] in the layout the model is kept in (channels_last)."""
    return x.contiguous(memory_format=torch.channels_last)


def place_model(model: nn.Module, device: torch.device) -> nn.Module:
    """Move ``model`` to ``device`` in the channels_last layout (see the module docstring)."""
    return model.to(device=device, memory_format=torch.channels_last)
