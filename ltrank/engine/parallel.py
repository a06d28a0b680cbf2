"""What the training loop does differently with several processes (docs/distributed.md).

The trainer calls these at fixed places; with one process each returns its input or does
nothing, so a single-process run computes exactly what it computed before.

- :func:`prepare_model` converts BatchNorm to synchronised BatchNorm (``train.sync_bn``) once
  the model is on its device; :func:`data_parallel` wraps it in DistributedDataParallel for a
  training phase (rebuilt per phase: DDP averages the gradients of the parameters that require
  them when it is built, and phases freeze different parts). The loss modules stay outside DDP:
  a batch-coupled loss computes the global loss on every rank, so its own parameters (DRO-LT's
  radii) get the same, complete gradient on every rank and need no averaging.
- :func:`batch_verdict` decides divergence and stop requests for all ranks at once: one rank's
  NaN, or one rank's SIGTERM, stops every rank at the same batch.
- :func:`epoch_totals` turns the ranks' loss sums and correct/seen counts into the numbers a
  single process would record.
- :func:`share_buffers` gives every rank rank 0's buffers (BatchNorm running statistics) at
  the end of every epoch, so evaluation, the checkpoint and the next epoch use one model.
"""

from __future__ import annotations

import inspect

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ltrank.distributed import all_reduce_max, all_reduce_sum, world_size
from ltrank.models.sync_bn import maybe_sync_bn


def prepare_model(model: nn.Module, sync_bn: bool) -> nn.Module:
    """``model`` with synchronised BatchNorm when ``sync_bn`` and there are several processes.

    In one process synchronised BatchNorm computes what BatchNorm does, so the model is left as
    it is. Call after the model is on its device and before :func:`data_parallel`.
    """
    return maybe_sync_bn(model, sync_bn) if world_size() > 1 else model


def data_parallel(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` wrapped in DistributedDataParallel over its parameters that require gradients
    now; ``model`` itself with one process. Buffers are not broadcast at every forward (see
    :func:`share_buffers`)."""
    if world_size() == 1:
        return model
    ids = [device] if device.type == "cuda" else None
    # torch >= 2.14 names the option forward_sync_buffers (broadcast_buffers is deprecated there)
    newer = "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
    no_sync = {"forward_sync_buffers": False} if newer else {"broadcast_buffers": False}
    return DistributedDataParallel(model, device_ids=ids, **no_sync)


def batch_verdict(loss_sum: torch.Tensor, bad_logits: torch.Tensor, stop: bool) -> tuple[bool, bool]:
    """``(diverged, stop)`` after a batch, the same on every rank.

    ``loss_sum`` is the rank's running loss sum (diverged when not finite), ``bad_logits`` a bool
    tensor (some logit was not finite), ``stop`` the rank's own stop request. One all-reduce
    with several processes; reading the flags synchronises a GPU, so call it at the trainer's
    sync points only.
    """
    flags = torch.stack([~torch.isfinite(loss_sum), bad_logits.reshape(()),
                         torch.tensor(stop, device=loss_sum.device)]).to(torch.int32)
    nonfinite, bad, stop_all = all_reduce_max(flags).tolist()
    return bool(nonfinite or bad), bool(stop_all)


def epoch_totals(loss_sum: torch.Tensor, correct: torch.Tensor, seen: int) -> tuple[float, int, int]:
    """The epoch's loss sum, correct predictions and images seen, as one process would count them.

    Correct and seen are summed over the ranks. The loss sum is the ranks' mean: a built-in loss
    returns the global batch's value on every rank (the mean changes nothing), and a plugin's
    per-sample mean over a rank's equal slice averages to the global batch's mean.
    """
    if world_size() == 1:
        return loss_sum.item(), int(correct.item()), seen
    totals = all_reduce_sum(torch.stack([loss_sum.double(), correct.double(),
                                         torch.tensor(float(seen), dtype=torch.float64, device=loss_sum.device)]))
    total_loss, total_correct, total_seen = totals.tolist()
    return total_loss / world_size(), round(total_correct), round(total_seen)


@torch.no_grad()
def share_buffers(model: nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics, counters) to every rank.

    Parameters need no copy (every rank applies the same averaged gradients). Without
    ``train.sync_bn`` each rank's running statistics follow its own slices; this makes rank 0's
    the model's. With synchronised BatchNorm they are equal already. Nothing with one process.
    """
    if world_size() == 1:
        return
    for buffer in model.buffers():
        dist.broadcast(buffer, src=0)
