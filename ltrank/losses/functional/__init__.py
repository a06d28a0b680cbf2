"""Loss kernels as plain functions, so each can be tested in isolation (docs/method.md sections 5-6)."""

from ltrank.losses.functional.ap import ap_loss
from ltrank.losses.functional.drolt import drolt_loss
from ltrank.losses.functional.focal import focal_loss
from ltrank.losses.functional.ldam import ldam_loss, ldam_loss_from_margins, ldam_margins

__all__ = ["ap_loss", "drolt_loss", "focal_loss", "ldam_loss", "ldam_loss_from_margins", "ldam_margins"]
