"""Batch norm over the batch of all ranks together (distributed runs).

On GPUs :class:`torch.nn.SyncBatchNorm` does it; elsewhere (gloo on the CPU)
:class:`CrossRankBatchNorm`, with the same numbers and the same state dict.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn


class _SumOverRanks(torch.autograd.Function):
    """``all_reduce(SUM)`` with a gradient: the gradient is summed over ranks as well."""

    @staticmethod
    def forward(ctx: Any, tensor: Tensor) -> Tensor:
        out = tensor.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        out = grad.clone()
        dist.all_reduce(out)
        return out


def _sum_over_ranks(tensor: Tensor) -> Tensor:
    out: Tensor = _SumOverRanks.apply(tensor)  # type: ignore[no-untyped-call]
    return out


class CrossRankBatchNorm(nn.BatchNorm1d):
    """:class:`~torch.nn.BatchNorm1d` normalising with the batch of all ranks together.

    In training, with a process group of several ranks, the mean and (biased) variance
    are those of the rows of every rank's batch (two-pass, float32), with gradients
    flowing through the reductions, as :class:`torch.nn.SyncBatchNorm` does on GPUs; the
    running statistics get the unbiased variance over all rows. Otherwise (evaluation,
    one process) it is a plain ``BatchNorm1d``. Same state dict.

    Input ``(R, F)`` or ``(R, F, L)``: statistics over every axis but ``F``.
    """

    def forward(self, input: Tensor) -> Tensor:
        """Normalised ``input`` (same shape and dtype)."""
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(input)
        self._check_input_dim(input)
        x = input.float()
        axes = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        rows = x.new_tensor([x.numel() // max(x.shape[1], 1)])
        first = _sum_over_ranks(torch.cat([x.sum(axes), rows]))
        count = first[-1]
        mean = first[:-1] / count
        centred = x - mean.view(shape)
        var = _sum_over_ranks((centred * centred).sum(axes)) / count
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.weight is not None and self.bias is not None:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            self._track(mean.detach(), var.detach(), float(count.detach()))
        return out.to(input.dtype)

    @torch.no_grad()
    def _track(self, mean: Tensor, var: Tensor, count: float) -> None:
        if self.running_mean is None or self.running_var is None:
            return
        if self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
        if self.momentum is None:  # cumulative average, as BatchNorm1d
            factor = 1.0 / float(self.num_batches_tracked or 1)
        else:
            factor = self.momentum
        unbiased = var * (count / max(count - 1.0, 1.0))
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), factor)
        self.running_var.lerp_(unbiased.to(self.running_var.dtype), factor)

    @classmethod
    def from_batchnorm(cls, bn: nn.BatchNorm1d) -> CrossRankBatchNorm:
        """A :class:`CrossRankBatchNorm` sharing ``bn``'s parameters and buffers."""
        new = cls(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
        new.weight, new.bias = bn.weight, bn.bias
        new.running_mean, new.running_var = bn.running_mean, bn.running_var
        new.num_batches_tracked = bn.num_batches_tracked
        return new.train(bn.training)


def synchronise_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Replace the batch norms of ``module`` by cross-rank ones (same parameter objects).

    CUDA: :meth:`torch.nn.SyncBatchNorm.convert_sync_batchnorm`; other devices:
    :class:`CrossRankBatchNorm` (``BatchNorm1d`` layers, the only kind our models use).
    """
    if device.type == "cuda":
        converted: nn.Module = nn.SyncBatchNorm.convert_sync_batchnorm(module)  # type: ignore[no-untyped-call]
        return converted
    if type(module) is nn.BatchNorm1d:
        return CrossRankBatchNorm.from_batchnorm(module)
    for name, child in module.named_children():
        new = synchronise_batchnorm(child, device)
        if new is not child:
            module.add_module(name, new)
    return module
