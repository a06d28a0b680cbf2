"""Synchronised BatchNorm for distributed training (``train.sync_bn``), on GPUs and on CPUs.

With DistributedDataParallel each rank's BatchNorm layers would normalise with the statistics
of the rank's slice only, so the training step depends on the number of processes. Synchronised
BatchNorm computes the batch mean and variance over the global batch instead; with it, a step
of N processes on slices of a batch equals the single-process step on that batch.

torch's ``nn.SyncBatchNorm`` runs only on GPU-like devices (it raises for CPU tensors). The
subclass here keeps torch's implementation wherever torch runs it and adds the same computation
for CPU tensors (the gloo backend), so that CPU runs and tests use the same setting.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn
from torch import nn

from ltrank.distributed import is_distributed


def maybe_sync_bn(model: nn.Module, enabled: bool) -> nn.Module:
    """``model`` with every BatchNorm layer synchronised over the process group when ``enabled``.

    ``nn.SyncBatchNorm.convert_sync_batchnorm`` does the conversion (weights, running
    statistics and flags carry over); each converted layer then becomes :class:`SyncBatchNorm`,
    which adds a CPU path and no state. Call it before wrapping the model in
    DistributedDataParallel. Not enabled: ``model`` unchanged. Without an initialised process
    group, and in eval mode, the layers behave as plain BatchNorm.
    """
    if not enabled:
        return model
    model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for module in model.modules():
        if type(module) is nn.SyncBatchNorm:
            module.__class__ = SyncBatchNorm
    return model


class SyncBatchNorm(nn.SyncBatchNorm):
    """``nn.SyncBatchNorm`` that also trains on CPU tensors under torch.distributed (gloo).

    CPU path (training mode, process group initialised): per channel, the sums of x and x^2 and
    the element count of this rank are accumulated in float64 and summed over the ranks by one
    autograd-aware all-reduce; mean and biased variance normalise, the unbiased variance feeds
    the running estimate (momentum as in ``nn.BatchNorm``). The all-reduce's backward sums the
    ranks' gradients of the statistics, as torch's GPU implementation does, so each rank's input
    gradient is that of the sum of all ranks' losses. Every other case is torch's own forward.
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 (torch's argument name)
        if self.training and input.device.type == "cpu" and is_distributed():
            return self._cpu_forward(input)
        return super().forward(input)

    def _cpu_forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        channels = x.shape[1]
        dims = [0, *range(2, x.ndim)]
        x64 = x.double()
        local = torch.cat([x64.sum(dims), x64.square().sum(dims), x64.new_tensor([x.numel() // channels])])
        group = self.process_group if self.process_group is not None else dist.group.WORLD
        total = dist_nn.all_reduce(local, group=group)
        count = total[2 * channels]
        mean = total[:channels] / count
        var = (total[channels:2 * channels] / count - mean.square()).clamp_min(0.0)
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            self._update_running_stats(mean.detach(), var.detach(), float(count))
        shape = (1, channels) + (1,) * (x.ndim - 2)
        inv_std = torch.rsqrt(var + self.eps)
        y = (x - mean.to(x.dtype).view(shape)) * inv_std.to(x.dtype).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, count: float) -> None:
        assert self.running_mean is not None and self.running_var is not None
        factor = 0.0 if self.momentum is None else self.momentum
        if self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average, as nn.BatchNorm
                factor = 1.0 / float(self.num_batches_tracked)
        unbiased = var * (count / max(count - 1.0, 1.0))
        self.running_mean.mul_(1.0 - factor).add_(mean.to(self.running_mean.dtype), alpha=factor)
        self.running_var.mul_(1.0 - factor).add_(unbiased.to(self.running_var.dtype), alpha=factor)
