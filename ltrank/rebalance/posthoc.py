"""One post-hoc adjustment applied to a trained model: the model evaluation should run instead.

The caller (``ltrank eval --posthoc``, a 0-epoch recipe stage) passes the TRAINING split (NCM
needs its features) and the source's VALIDATION split, or None where the source has none. There
is deliberately no test-split argument: nothing here can select on test data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from ltrank.errors import LtrankError
from ltrank.models.classifier import Classifier
from ltrank.models.heads import CosineHead
from ltrank.rebalance.features import extract_batch_features, extract_features
from ltrank.rebalance.logit_adjust import LogitAdjusted, class_prior
from ltrank.rebalance.ncm import NCMHead, class_means
from ltrank.rebalance.spec import PosthocSpec, format_tau
from ltrank.rebalance.stage import check_classifier
from ltrank.rebalance.tau_norm import (
    TAU_GRID,
    check_linear_head,
    select_tau,
    tau_normalized_head,
)

NO_VALIDATION = ("tau-norm=auto picks tau on the source's validation split, and this source has none "
                 "(tau is never picked on the test split); give tau, e.g. --posthoc tau-norm=1.0")


@dataclass(frozen=True)
class Split:
    """One split: images (uint8 [N, 3, H, W]) and labels (int64 [N]) held in memory, or, for a
    source streamed from disk, ``batches``: a factory of normalised ``(x, y)`` batches."""

    images: Optional[torch.Tensor] = None
    labels: Optional[torch.Tensor] = None
    batches: Optional[Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]]] = None

    def features(self, model: nn.Module, device: torch.device, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder's features and the labels of this split (test transform, eval mode)."""
        if self.batches is not None:
            return extract_batch_features(model, self.batches(), device)
        assert self.images is not None and self.labels is not None
        return extract_features(model, self.images, self.labels, device, batch_size)


@dataclass(frozen=True)
class PosthocResult:
    """The adjusted model (call ``model(x)`` on normalised batches for logits) and its row label.

    ``tau`` is the tau used (None for NCM); ``tau_scores`` the validation balanced accuracy of
    every grid tau when tau was selected (``tau-norm=auto``), else None.
    """

    model: nn.Module
    label: str
    tau: float | None
    tau_scores: dict[float, float] | None = None


def build_posthoc(spec: PosthocSpec, model: nn.Module, *, class_counts: Sequence[int], device: torch.device,
                  train: Split | None = None, validation: Split | None = None, batch_size: int = 1000,
                  logit_scale: float = 1.0) -> PosthocResult:
    """Apply ``spec`` to trained ``model`` (a Classifier on ``device``; it is not modified).

    tau-norm needs a linear head, and ``validation`` when tau is "auto" (grid :data:`TAU_GRID`);
    NCM needs ``train``; logit adjustment needs ``class_counts`` (all > 0) and the loss's
    ``logit_scale`` (see :class:`LogitAdjusted`). Problems raise a one-line LtrankError.
    """
    check_classifier(model, spec.label)
    num_classes = len(class_counts)
    if spec.kind == "logit-adjust":
        assert spec.tau is not None
        return PosthocResult(LogitAdjusted(model, class_prior(class_counts), spec.tau, logit_scale), spec.label, spec.tau)
    if spec.kind == "ncm":
        if train is None:
            raise LtrankError("ncm needs the training split (its class means); pass the run's training data")
        features, labels = train.features(model, device, batch_size)
        head = NCMHead(class_means(features, labels, num_classes))
        return PosthocResult(Classifier(model.encoder, head, model.feature_dim), spec.label, None)
    check_linear_head(model.head)  # before any feature pass: a cosine head is refused at once
    tau, scores = spec.tau, None
    if tau is None:
        if validation is None:
            raise LtrankError(NO_VALIDATION)
        features, labels = validation.features(model, device, batch_size)
        selection = select_tau(model.head, features, labels, num_classes, TAU_GRID)
        tau, scores = selection.tau, selection.scores
    label = spec.label if spec.tau is not None else f"tau-norm (tau {format_tau(tau)}, auto on validation)"
    adjusted = Classifier(model.encoder, tau_normalized_head(model.head, tau), model.feature_dim)
    return PosthocResult(adjusted, label, tau, scores)


def check_posthoc(spec: PosthocSpec, model: nn.Module, *, class_counts: Sequence[int], has_validation: bool,
                  logit_scale: float | None) -> float:
    """Refuse at once what :func:`build_posthoc` would refuse, before any feature pass or training.

    ``logit_scale`` is the factor the training loss applied to the logits, None when unknown (a
    bare checkpoint): then 1 for a linear head and an error for a cosine head, whose loss scaled
    its cosines (LDAM). Returns the factor to pass to :func:`build_posthoc`.
    """
    check_classifier(model, spec.label)
    if spec.kind == "tau-norm":
        check_linear_head(model.head)
        if spec.tau is None and not has_validation:
            raise LtrankError(NO_VALIDATION)
    elif spec.kind == "ncm":
        empty = [c for c, n in enumerate(class_counts) if n <= 0]
        if empty:
            raise LtrankError(f"NCM needs training images of every class, but class {empty[0]} has none; "
                              "use tau-norm or logit-adjust, or a split that holds every class")
    else:
        class_prior(class_counts)
        if logit_scale is None and isinstance(model.head, CosineHead):
            raise LtrankError(
                "logit-adjust on a cosine head needs the scale the training loss applied to its cosines (LDAM: s), "
                "and the model's run does not say it (a bare checkpoint); start from a run folder with its record.json")
    return 1.0 if logit_scale is None else logit_scale
