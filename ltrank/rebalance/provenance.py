"""What a run built on another run (cRT, LWS, a post-hoc adjustment) needs to know about it.

A run started from a trained model records where that model came from (``init_from``, an
:class:`~ltrank.records.InitSource`); for decoupled training it also keeps the source's method
(so ``ltrank compare`` labels the row "<stage-1 method> + cRT") and the factor its loss applied
to the logits (post-hoc logit adjustment subtracts the prior from the logits the softmax saw).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from ltrank.records import InitSource, RunRecord

#: Losses that multiply the model's outputs by a factor before their softmax, and the parameter
#: that holds it: LDAM scales the cosines of its cosine head by ``s``. Other losses: factor 1.
LOGIT_SCALE_PARAMS: dict[str, str] = {"ldam": "s"}

_TRAINING = ("train", "crt", "lws")


def loss_logit_scale(loss: dict[str, Any]) -> float:
    """The logit factor of a resolved ``[loss]`` table (``{"name": ..., "params": {...}}``)."""
    param = LOGIT_SCALE_PARAMS.get(str(loss.get("name")))
    return float((loss.get("params") or {}).get(param, 1.0)) if param else 1.0


def logit_scale_of(record: RunRecord) -> Optional[float]:
    """The logit factor of the loss that trained ``record``'s final classifier.

    That is the loss of its last training stage (or its ``[loss]``); a run that only adjusted
    another run's model (a post-hoc stage or ``ltrank eval --posthoc``) passes on its source's
    factor, None when that is unknown (a bare checkpoint).
    """
    recipe = record.recipe
    stages = (recipe.get("train") or {}).get("stages") or []
    training = [s for s in stages if s.get("method", "train") in _TRAINING]
    if record.posthoc is not None or (stages and not training):
        return record.init_from.logit_scale if record.init_from is not None else None
    loss = (training[-1].get("loss") if training else None) or recipe.get("loss") or {}
    return loss_logit_scale(loss)


def source_of(checkpoint: Path, record: RunRecord) -> InitSource:
    """The :class:`~ltrank.records.InitSource` of a run started from ``checkpoint`` of run ``record``."""
    from ltrank.compare.methods import method_key, method_label

    return InitSource(path=str(checkpoint), recipe_name=record.recipe_name, config_hash=record.config_hash,
                      seed=record.seed, finished_at=record.finished_at, epochs=len(record.history),
                      method_key=method_key(record), method_label=method_label(record),
                      logit_scale=logit_scale_of(record))
