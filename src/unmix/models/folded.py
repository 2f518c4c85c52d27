"""Open-Unmix inference in bfloat16 on the CPU, with the batch norms folded into the weights.

Under CPU autocast (``--precision bf16``, :mod:`unmix.precision`) the matrix products and
the LSTM of :class:`~unmix.models.umx.OpenUnmix` run in bfloat16 and take half the time
they take in float32; what then weighs is the elementwise work around them, which bfloat16
does not speed up: the input normalisation and its reshaping copy, three batch norms, the
output scaling and offset, each a pass over ``frames × bins`` values, several of them
mixing bfloat16 and float32. In evaluation every one of them is an affine map per
feature, so it folds into its neighbour:

* input: ``(x + m) · s`` in one float32 pass, then one rounding to bfloat16;
* ``bn1(fc1 · )`` and ``bn2(fc2 · )`` become ``W' · + b'`` (rows of ``W`` scaled);
* ``bn3(fc3 · ) · output_scale + output_mean`` becomes one float32 ``addcmul`` of the
  bfloat16 product of fc3, followed by the ReLU and the product with the mixture, in place
  in the caller's float32 buffer.

The result is the same network up to bfloat16 rounding, closer to float32 than plain
autocast (the masks are no longer rounded to bfloat16 before the output affine: 80-88 dB
instead of 68-75 dB SDR against the float32 stems, umxhq size, random weights); float32
and training do not come here. The weights are folded at each call (1.5 ms for a umxhq
branch, about what autocast's weight casts cost): nothing to keep in step with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor, nn
from torch.nn import functional

#: the autocast type this path serves
DTYPE = torch.bfloat16


class Layers(Protocol):
    """What :func:`fold` reads of an :class:`~unmix.models.umx.OpenUnmix`."""

    nb_bins: int
    input_mean: Tensor
    input_scale: Tensor
    output_scale: Tensor
    output_mean: Tensor
    fc1: nn.Linear
    bn1: nn.BatchNorm1d
    fc2: nn.Linear
    bn2: nn.BatchNorm1d
    fc3: nn.Linear
    bn3: nn.BatchNorm1d


@dataclass(frozen=True)
class Folded:
    """The folded layers of one network: input shift ``m · s`` and scale ``s`` ``(B,)``
    (float32), then ``(W, b)`` of fc1+bn1, fc2+bn2 and fc3+bn3+output affine (``W`` in
    bfloat16, ``b`` float32)."""

    shift: Tensor
    scale: Tensor
    layers: tuple[tuple[Tensor, Tensor], ...]
    output: tuple[Tensor, Tensor, Tensor]


def applies(net: nn.Module, x: Tensor) -> bool:
    """Whether :func:`forward_into` serves this call: CPU bfloat16 autocast, evaluation
    mode, no autograd."""
    return (
        x.device.type == "cpu"
        and torch.is_autocast_enabled("cpu")
        and torch.get_autocast_dtype("cpu") == DTYPE
        and not net.training
        and not torch.is_grad_enabled()
    )


def bn_affine(bn: nn.BatchNorm1d, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """``bn`` in evaluation as ``y · scale + shift``, both ``(features,)`` in ``dtype``."""
    assert bn.running_mean is not None and bn.running_var is not None
    scale = torch.rsqrt(bn.running_var.to(dtype) + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.to(dtype)
    shift = -bn.running_mean.to(dtype) * scale
    if bn.bias is not None:
        shift = shift + bn.bias.to(dtype)
    return scale, shift


def _linear(fc: nn.Linear, scale: Tensor, shift: Tensor) -> tuple[Tensor, Tensor]:
    """``fc`` followed by ``· scale + shift`` per output, as one ``(W, b)``."""
    weight = (fc.weight.float() * scale[:, None]).to(DTYPE)
    bias = shift if fc.bias is None else fc.bias.float() * scale + shift
    return weight, bias


def fold(net: Layers) -> Folded:
    """The folded layers of ``net`` (evaluation mode)."""
    with torch.no_grad(), torch.autocast("cpu", enabled=False):
        scale3, shift3 = bn_affine(net.bn3)
        out_scale = net.output_scale.float().repeat(scale3.numel() // net.output_scale.numel())
        out_mean = net.output_mean.float().repeat(scale3.numel() // net.output_mean.numel())
        layers = (
            _linear(net.fc1, *bn_affine(net.bn1)),
            _linear(net.fc2, *bn_affine(net.bn2)),
        )
        if net.fc3.bias is not None:
            shift3 = shift3 + net.fc3.bias.float() * scale3
        # fc3 keeps its weights: its output is scaled in float32 (the masks' precision)
        output = (net.fc3.weight.to(DTYPE), scale3 * out_scale, shift3 * out_scale + out_mean)
        scale = net.input_scale.float()
        return Folded(net.input_mean.float() * scale, scale, layers, output)


def forward_into(net: nn.Module, x: Tensor, out: Tensor) -> None:
    """:meth:`OpenUnmix.forward_into <unmix.models.umx.OpenUnmix.forward_into>` with the
    folded layers (call only where :func:`applies`).

    Args:
        net: an :class:`~unmix.models.umx.OpenUnmix`.
        x: mixture magnitude, frames first ``(N, S, C, F)``.
        out: ``(N, S, C, F)`` float32, any strides; overwritten with the target magnitude.
    """
    layers: Layers = net  # type: ignore[assignment]
    folded = fold(layers)  # each call (1.5 ms for umxhq): weights may change between calls
    (w1, b1), (w2, b2) = folded.layers
    w3, scale3, shift3 = folded.output
    nb_frames, nb_samples, nb_channels, nb_bins = x.shape
    width = layers.nb_bins
    with torch.autocast("cpu", enabled=False):
        h = x.new_empty((nb_frames, nb_samples, nb_channels, width))  # frames first
        h = torch.addcmul(folded.shift, x[..., :width], folded.scale, out=h).to(DTYPE)
        h = torch.tanh(functional.linear(h.view(-1, nb_channels * width), w1, b1.to(DTYPE)))
        h = h.view(nb_frames, nb_samples, -1)
    lstm: nn.LSTM = net.lstm  # type: ignore[assignment]
    lstm_out, _ = lstm(h)  # under the caller's autocast: bfloat16
    with torch.autocast("cpu", enabled=False):
        skip = torch.cat([h, lstm_out.to(DTYPE)], -1).view(nb_frames * nb_samples, -1)
        y = torch.relu_(functional.linear(skip, w2, b2.to(DTYPE)))
        y = functional.linear(y, w3).view(nb_frames, nb_samples, nb_channels, nb_bins)
        out.copy_(y)  # to float32 in place: no temporary
        shape = (nb_channels, nb_bins)
        torch.addcmul(shift3.view(shape), out, scale3.view(shape), out=out)
        out.relu_().mul_(x)  # mask · mixture
