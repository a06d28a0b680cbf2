"""Tau-normalisation of Kang et al., "Decoupling Representation and Classifier for Long-Tailed
Recognition", ICLR 2020.

After instance-balanced training the norm of a class's weight vector grows with the class's
training count; dividing every class vector by its norm to the power tau removes that bias
(tau = 1: unit norms; tau = 0: the trained classifier). No training: tau is given, or picked on
a validation split from :data:`TAU_GRID` (never on the test split).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ltrank.errors import LtrankError
from ltrank.models.heads import CosineHead

#: tau values tried by ``tau-norm=auto``: 0.0, 0.1, ..., 2.0, the sweep of the public
#: tau_norm.py (facebookresearch/classifier-balancing: ``np.linspace(0, 2, 21)``).
TAU_GRID: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(21))

#: Norms are clamped to at least this before the power, so an all-zero class vector stays zero.
_MIN_NORM = 1e-12


def tau_normalize(weight: torch.Tensor, tau: float) -> torch.Tensor:
    """``w_c / ||w_c||_2 ** tau`` for every row of ``weight`` [C, D]; same dtype and device.

    tau = 0 returns the weights unchanged (bit for bit); tau = 1 gives unit-norm rows.
    """
    norms = weight.norm(dim=1, keepdim=True).clamp_min(_MIN_NORM)
    return weight / norms.pow(tau)


def check_linear_head(head: nn.Module) -> nn.Linear:
    """The head as an nn.Linear, or a one-line LtrankError saying why tau-norm cannot apply."""
    if isinstance(head, CosineHead):
        raise LtrankError(
            "tau-norm does nothing on a cosine head (it normalises its class vectors in every forward pass, "
            "so w/||w||^tau gives the same logits); use logit-adjust=TAU or ncm instead"
        )
    if not isinstance(head, nn.Linear):
        raise LtrankError(
            f"tau-norm rescales the class vectors of a linear head; this model's head is {type(head).__name__}; "
            "use logit-adjust=TAU or ncm instead"
        )
    return head


def tau_normalized_head(head: nn.Module, tau: float) -> nn.Linear:
    """A frozen copy of linear ``head`` with tau-normalised weights and the same bias.

    The bias is kept (so tau = 0 is exactly the trained model); the public tau_norm.py drops it.
    Raises LtrankError for a cosine or other non-linear head (see :func:`check_linear_head`).
    """
    linear = check_linear_head(head)
    new = copy.deepcopy(linear)
    with torch.no_grad():
        new.weight.copy_(tau_normalize(linear.weight, tau))
    new.requires_grad_(False)
    return new


@dataclass(frozen=True)
class TauSelection:
    """The tau picked on validation data and every grid point's balanced accuracy (fraction)."""

    tau: float
    scores: dict[float, float]


def balanced_accuracy(preds: torch.Tensor, labels: torch.Tensor, num_classes: int) -> float:
    """Mean over the classes present in ``labels`` of their accuracy (= top-1 when balanced)."""
    total = torch.bincount(labels, minlength=num_classes).double()
    correct = torch.bincount(labels[preds == labels], minlength=num_classes).double()
    present = total > 0
    return (correct[present] / total[present]).mean().item()


@torch.no_grad()
def select_tau(head: nn.Module, features: torch.Tensor, labels: torch.Tensor, num_classes: int,
               grid: Sequence[float] = TAU_GRID) -> TauSelection:
    """Pick tau from ``grid`` by balanced accuracy on VALIDATION ``features`` [N, D] / ``labels`` [N].

    Ties go to the earlier grid value (the smaller tau: the least change to the trained model).
    Raises LtrankError for a non-linear head, ValueError for an empty grid or empty data.
    """
    linear = check_linear_head(head)
    if not grid or len(labels) == 0:
        raise ValueError("select_tau needs a non-empty grid and at least one validation sample")
    labels = labels.to(features.device)
    features = features.float()
    bias = linear.bias.float() if linear.bias is not None else None
    scores: dict[float, float] = {}
    best = float(grid[0])
    for tau in grid:
        logits = nn.functional.linear(features, tau_normalize(linear.weight.float(), tau), bias)
        scores[float(tau)] = balanced_accuracy(logits.argmax(dim=1), labels, num_classes)
        if scores[float(tau)] > scores[best]:
            best = float(tau)
    return TauSelection(best, scores)
