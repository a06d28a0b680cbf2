"""Synchronised BatchNorm for distributed training (``train.sync_bn``), on GPUs and on CPUs.

With DistributedDataParallel each rank's BatchNorm layers would normalise with the statistics
of the rank's slice only, so the training step depends on the number of processes. Synchronised
BatchNorm computes the batch mean and variance over the global batch instead; with it, a step
of N processes on slices of a batch equals the single-process step on that batch.

torch's ``nn.SyncBatchNorm`` runs only on GPU-like devices, and DDP refuses it in a CPU module.
So a model on the CPU (gloo backend) gets :class:`GlobalBatchNorm`, the same computation written
with torch.distributed's all-reduce (and its transpose, another all-reduce, in backward); a model
on a GPU gets torch's own layer.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ltrank.distributed import world_size


def maybe_sync_bn(model: nn.Module, enabled: bool) -> nn.Module:
    """``model`` with every BatchNorm layer synchronised over the default process group.

    Call it after moving the model to its device and before wrapping it in
    DistributedDataParallel. A model whose parameters are on the CPU gets
    :class:`GlobalBatchNorm` layers; any other gets ``nn.SyncBatchNorm.convert_sync_batchnorm``.
    Weights and running statistics carry over (the same tensors), under the same state_dict
    keys. Not ``enabled``: ``model`` unchanged. Without a process group of 2+ ranks, and in
    eval mode, the layers compute exactly what plain BatchNorm computes.
    """
    if not enabled:
        return model
    first = next(model.parameters(), None)
    if first is not None and first.device.type != "cpu":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return _convert(model)


def _convert(module: nn.Module) -> nn.Module:
    out = module
    if isinstance(module, _BatchNorm) and not isinstance(module, (nn.SyncBatchNorm, GlobalBatchNorm)):
        out = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                              module.track_running_stats)
        if module.affine:
            out.weight, out.bias = module.weight, module.bias
        out.running_mean, out.running_var = module.running_mean, module.running_var
        out.num_batches_tracked = module.num_batches_tracked
        out.train(module.training)
    for name, child in module.named_children():
        out.add_module(name, _convert(child))
    return out


class GlobalBatchNorm(_BatchNorm):
    """BatchNorm over inputs [N, C, ...] whose training statistics span all ranks' batches.

    Training mode with 2+ ranks: per channel, this rank's sums of x and x^2 and its element
    count are accumulated in float64 and summed over the ranks by one all-reduce (differentiable);
    the mean and the biased variance normalise, the unbiased variance feeds the running estimate
    (momentum as in ``nn.BatchNorm2d``). The all-reduce's backward sums the ranks' gradients of
    the statistics, as torch's GPU implementation does, so each rank's input gradient is that of
    the sum of all ranks' losses. Otherwise (eval mode, one process) it is plain BatchNorm.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:  # noqa: A002 (torch's argument name)
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002
        if self.training and world_size() > 1:
            return self._global_forward(input)
        return super().forward(input)

    def _global_forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        channels = x.shape[1]
        dims = [0, *range(2, x.ndim)]
        x64 = x.double()
        local = torch.cat([x64.sum(dims), x64.square().sum(dims), x64.new_tensor([x.numel() // channels])])
        total = _AllReduceSum.apply(local)
        count = total[2 * channels].detach()
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
            if self.momentum is None:  # cumulative moving average, as nn.BatchNorm2d
                factor = 1.0 / float(self.num_batches_tracked)
        unbiased = var * (count / max(count - 1.0, 1.0))
        self.running_mean.mul_(1.0 - factor).add_(mean.to(self.running_mean.dtype), alpha=factor)
        self.running_var.mul_(1.0 - factor).add_(unbiased.to(self.running_var.dtype), alpha=factor)


class _AllReduceSum(torch.autograd.Function):
    """Sum over the ranks; the gradient of the sum for every rank is the sum of the ranks' gradients."""

    @staticmethod
    def forward(ctx, x):  # type: ignore[override]
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad_output):  # type: ignore[override]
        grad = grad_output.clone()
        dist.all_reduce(grad)
        return grad
