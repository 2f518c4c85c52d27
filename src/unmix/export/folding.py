"""One Open-Unmix branch for export, its per-feature affine maps folded into the matrices.

In evaluation the batch norms and the output scaling of :class:`~unmix.models.umx.OpenUnmix`
are affine maps per feature, and each folds into the matrix product before it:

* ``bn1`` into fc1, ``bn2`` into fc2 (``W' = diag(a) W``, ``b' = a ⊙ b + c``);
* ``bn3`` and the output scaling and offset into fc3.

So the exported graph holds one ``Gemm`` with a bias (its ReLU fused by onnxruntime) where
the traced branch held a ``Gemm`` and four passes over ``frames × 2 × 2049`` values (a copy
to drop the sample axis, a scaling, an offset, a ReLU): about 80 ms of every 60-s
umxhq-size segment on one thread. The folding is done in float64 and rounded once. The
input normalisation ``(x + m) · s`` stays as it is: folded into fc1 its offset becomes a
bias that cancels most of ``W x``, and with two EM iterations the stems moved from 5.5e-5
to 1.1e-4 (max abs) away from the torch separator's, over the parity goal (1e-4).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..models.contract import SeparationModel
from ..models.folded import bn_affine
from ..models.umx import UMX, OpenUnmix


def _bias(fc: nn.Linear) -> Tensor:
    """``fc``'s bias in float64 (zeros where it has none: Open-Unmix's have none)."""
    return (
        fc.bias.double() if fc.bias is not None else fc.weight.new_zeros(fc.out_features).double()
    )


def _linear(weight: Tensor, bias: Tensor) -> nn.Linear:
    """A float32 ``nn.Linear`` with these float64 ``weight (out, in)``, ``bias (out,)``."""
    layer = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        layer.weight.copy_(weight.float())
        layer.bias.copy_(bias.float())
    return layer


class FoldedBranch(nn.Module):
    """``mag (N, C, F)`` → mask ``(N, C, F)``: what ``net`` computes for one sample, with
    the affine maps folded (see the module docstring).

    Args:
        net: one target's network (its current weights are copied; evaluation mode).
    """

    shift: Tensor
    scale: Tensor

    def __init__(self, net: OpenUnmix) -> None:
        super().__init__()
        self.nb_bins = net.nb_bins
        with torch.no_grad():
            channels = net.fc1.in_features // net.nb_bins
            self.register_buffer("shift", net.input_mean.detach().float().repeat(channels))
            self.register_buffer("scale", net.input_scale.detach().float().repeat(channels))
            a1, c1 = bn_affine(net.bn1, torch.float64)
            w1 = net.fc1.weight.double()
            self.fc1 = _linear(a1[:, None] * w1, a1 * _bias(net.fc1) + c1)
            a2, c2 = bn_affine(net.bn2, torch.float64)
            self.fc2 = _linear(a2[:, None] * net.fc2.weight.double(), a2 * _bias(net.fc2) + c2)
            a3, c3 = bn_affine(net.bn3, torch.float64)
            c3 = a3 * _bias(net.fc3) + c3
            repeat = a3.numel() // net.output_scale.numel()
            out_scale = net.output_scale.double().repeat(repeat)
            out_mean = net.output_mean.double().repeat(repeat)
            a3 = a3 * out_scale
            self.fc3 = _linear(a3[:, None] * net.fc3.weight.double(), c3 * out_scale + out_mean)
        self.lstm = net.lstm

    def forward(self, mag: Tensor) -> Tensor:
        """See the class."""
        nb_frames, nb_channels, nb_bins = mag.shape
        x = mag[..., : self.nb_bins].reshape(nb_frames, -1)
        h = torch.tanh(self.fc1((x + self.shift) * self.scale))  # (N, Hd)
        lstm_out, _ = self.lstm(h[:, None])  # (N, 1, Hd)
        skip = torch.cat([h, lstm_out[:, 0]], dim=-1)
        y = torch.relu(self.fc2(skip))
        return torch.relu(self.fc3(y)).reshape(nb_frames, nb_channels, nb_bins)


def folded_branches(model: SeparationModel) -> nn.ModuleList | None:
    """The :class:`FoldedBranch` of every target of a :class:`~unmix.models.umx.UMX`, in
    target order; ``None`` for other models (they run their own ``forward``)."""
    if type(model) is not UMX:
        return None
    return nn.ModuleList(FoldedBranch(model.branch(t)) for t in model.targets)
