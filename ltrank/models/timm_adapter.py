"""``timm/<model>``: any timm model as an ltrank backbone (pooled features + ltrank head)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field

from ltrank.errors import LtrankError, did_you_mean
from ltrank.models.classifier import Classifier
from ltrank.models.heads import make_head


class TimmParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    head: Literal["linear", "cosine"] = Field("linear", description="classifier head on the pooled features")
    pretrained: bool = Field(False, description="load timm's pretrained weights (needs the internet or a filled HF cache)")
    drop_rate: float = Field(0.0, ge=0.0, lt=1.0, description="dropout before the classifier, passed to timm")


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


def build_timm(num_classes: int, model_name: str, head: str = "linear", pretrained: bool = False, drop_rate: float = 0.0) -> Classifier:
    """Build ``timm.create_model(model_name, num_classes=0)`` as the encoder, plus our head.

    timm's own classifier is removed (``num_classes=0``) so the encoder returns pooled features
    of size ``num_features``; the head is ltrank's, so ``head="cosine"`` works for any model.
    """
    import timm

    check_timm_model(model_name)
    try:
        if pretrained and not _hub_reachable():
            with _hub_offline():  # cached weights still load; a cold cache fails at once
                encoder = timm.create_model(model_name, pretrained=True, num_classes=0, drop_rate=drop_rate)
        else:
            encoder = timm.create_model(model_name, pretrained=pretrained, num_classes=0, drop_rate=drop_rate)
    except Exception as exc:  # hub/network errors surface as many exception types
        if not pretrained:
            raise
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LtrankError(
            f"could not get pretrained weights for timm/{model_name} ({type(exc).__name__}: {first}); "
            "connect to the internet or pre-fill the Hugging Face cache, or set pretrained = false"
        ) from None
    dim = int(encoder.num_features)
    return Classifier(encoder, make_head(head, dim, num_classes), dim)
