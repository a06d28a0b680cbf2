"""``timm/<model>``: any timm model as an ltrank backbone (pooled features + ltrank head)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal, Optional
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field

from ltrank.errors import LtrankError, did_you_mean
from ltrank.models.classifier import Classifier
from ltrank.models.heads import make_head


class TimmParams(BaseModel):
    """Models with a fixed input size (ViT, Swin, ...) need ``img_size`` = the images' side."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    head: Literal["linear", "cosine"] = Field("linear", description="classifier head on the pooled features")
    pretrained: bool = Field(False, description="load timm's pretrained weights (needs the internet or a filled HF cache)")
    drop_rate: float = Field(0.0, ge=0.0, lt=1.0, description="dropout before the classifier, passed to timm")
    img_size: Optional[int] = Field(
        None, gt=0,
        description="input side for models with a fixed input size (ViT, Swin, ...), e.g. 32 for CIFAR; passed to timm",
    )
    patch_size: Optional[int] = Field(
        None, gt=0, description="patch side of a patch-embedding model (ViT: 16 by default; 4 suits 32x32); passed to timm"
    )
    window_size: Optional[int] = Field(
        None, gt=0, description="attention window of a windowed model (Swin: 7 by default); passed to timm"
    )


#: The TimmParams that go to ``timm.create_model`` only when set (not every model takes them).
SIZE_KWARGS = ("img_size", "patch_size", "window_size")


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Can we open a TCP connection to the Hugging Face endpoint? (Avoids a minute of retries.)"""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    host = urlparse(endpoint).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        return False
    return True


@contextmanager
def _hub_offline() -> Iterator[None]:
    """Switch huggingface_hub to offline mode (cache only) for the duration."""
    from huggingface_hub import constants

    saved = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved


def check_timm_model(model_name: str) -> None:
    """A one-line LtrankError, with close names, when timm has no model ``model_name``."""
    import timm

    if not timm.is_model(model_name):
        hint = did_you_mean(model_name, timm.list_models(model_name[:3] + "*") or timm.list_models())
        raise LtrankError(f"unknown timm model {model_name!r}{hint}; see timm.list_models() for names")


def check_timm_input_size(model_name: str, image_size: tuple[int, int], img_size: int | None = None) -> None:
    """Refuse, in one line, a model timm marks as fixed-input-size that would not fit the images.

    Reads timm's default config only (nothing is built), so recipe validation can call it when
    the image size is known (CIFAR: 32x32). ``img_size`` is the recipe's ``model.params.img_size``.
    Some such models also run at other sizes; ``img_size`` makes them all fit.
    """
    import timm

    cfg = timm.models.get_pretrained_cfg(model_name)
    if cfg is None or not cfg.fixed_input_size:
        return
    side = (img_size, img_size) if img_size is not None else tuple(cfg.input_size[1:])
    if side != tuple(image_size):
        height, width = image_size
        fix = f"set [model.params] img_size = {height}" if height == width else "resize the images to a square"
        if img_size is None and "patch" in model_name:
            fix += f" (and a patch_size that divides it, e.g. {4 if height <= 64 else 16})"
        raise LtrankError(
            f"model.backbone: timm/{model_name} takes {side[0]}x{side[1]} images only, but the data's are "
            f"{height}x{width}; {fix}, or use a model without a fixed input size"
        )


def build_timm(
    num_classes: int,
    model_name: str,
    head: str = "linear",
    pretrained: bool = False,
    drop_rate: float = 0.0,
    img_size: int | None = None,
    patch_size: int | None = None,
    window_size: int | None = None,
) -> Classifier:
    """Build ``timm.create_model(model_name, num_classes=0)`` as the encoder, plus our head.

    timm's own classifier is removed (``num_classes=0``) so the encoder returns pooled features;
    the head is ltrank's, so ``head="cosine"`` works for any model. The head's width is timm's
    ``head_hidden_size``, the width after any layer that follows pooling (MobileNetV3's 1024-d
    ``conv_head``, not the 576 of ``num_features``). ``img_size`` / ``patch_size`` /
    ``window_size`` are passed to timm only when set; a model that does not take one is a
    one-line :class:`LtrankError`.
    """
    import timm

    check_timm_model(model_name)
    sizes = {k: v for k, v in zip(SIZE_KWARGS, (img_size, patch_size, window_size)) if v is not None}
    kwargs = dict(num_classes=0, drop_rate=drop_rate, **sizes)
    try:
        if pretrained and not _hub_reachable():
            with _hub_offline():  # cached weights still load; a cold cache fails at once
                encoder = timm.create_model(model_name, pretrained=True, **kwargs)
        else:
            encoder = timm.create_model(model_name, pretrained=pretrained, **kwargs)
    except TypeError as exc:
        refused = [k for k in sizes if k in str(exc)]
        if not refused:
            raise
        raise LtrankError(
            f"model.params.{refused[0]}: timm/{model_name} does not accept {refused[0]} "
            f"({str(exc).splitlines()[0]}); remove it"
        ) from None
    except Exception as exc:  # hub/network errors surface as many exception types
        if not pretrained:
            raise
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LtrankError(
            f"could not get pretrained weights for timm/{model_name} ({type(exc).__name__}: {first}); "
            "connect to the internet or pre-fill the Hugging Face cache, or set pretrained = false"
        ) from None
    dim = int(getattr(encoder, "head_hidden_size", None) or encoder.num_features)
    return Classifier(encoder, make_head(head, dim, num_classes), dim)
