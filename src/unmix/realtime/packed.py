"""The streaming network with half-precision or int8 weights (``precision="fp16"/"int8"``).

At one frame per block a causal UMX is a chain of matrix-vector products: every frame reads
all weights once (about 170 MB in float32 for an umxhq-size model), so one CPU thread is
bound by memory bandwidth, not arithmetic. :class:`PackedStep` stores the weights of every
linear layer and LSTM gate matrix in FBGEMM's packed formats and multiplies with its
one-row kernels:

* ``fp16``: weights as IEEE half floats (11-bit mantissa), products and sums in float32
  (``torch.ops.quantized.linear_dynamic_fp16``); half the bytes of float32;
* ``int8``: weights as int8 with one scale per output row, each layer's input quantised to
  (7-bit) uint8 on the fly with a scale from its own range
  (``torch.ops.quantized.linear_dynamic``); a quarter of the bytes.

Batch norm, the output scale and mean are folded into the rows and biases of the layer
before them (a row scale is exact for int8 with per-row scales). The input normalisation
stays a separate float32 step, so that the quantised input of the first layer is the
standardised spectrum, not raw magnitudes.

Frames are computed **one at a time**, each with the same operations, so the output does
not depend on how frames are grouped into calls (an int8 layer's input scale comes from one
frame only): the block-size invariance of the float32 engine holds here exactly too. The
STFT, the Wiener filter and the overlap-add stay float32.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, Literal, cast

import torch
from torch import Tensor

from ..errors import UnmixError
from .fused import FusedStep

#: precisions of the streaming network (``fp32``: :class:`FusedStep`, the exact reference)
StreamPrecision = Literal["fp32", "fp16", "int8"]
STREAM_PRECISIONS: tuple[StreamPrecision, ...] = ("fp32", "fp16", "int8")


def check_stream_precision(name: str) -> StreamPrecision:
    """``name`` as a :data:`StreamPrecision`, or one clear error (unknown, no FBGEMM here)."""
    value = str(name).strip().lower()
    if value == "bf16":
        raise UnmixError(
            "streaming has no bf16 precision (one-row bf16 products are no faster than "
            "float32 on CPU); use fp16 (half-precision weights, same speed-up) or int8"
        )
    if value not in STREAM_PRECISIONS:
        raise UnmixError(
            f"unknown stream precision {name!r}; use one of {', '.join(STREAM_PRECISIONS)}"
        )
    if value != "fp32" and "fbgemm" not in torch.backends.quantized.supported_engines:
        raise UnmixError(
            f"precision {value} needs PyTorch's FBGEMM kernels (x86-64 CPUs); use fp32 here"
        )
    return value


def _pack(weight: Tensor, bias: Tensor, precision: StreamPrecision) -> Tensor:
    """``weight (out, in)`` and ``bias (out,)`` packed for the one-row kernels."""
    weight, bias = weight.detach().float().contiguous(), bias.detach().float().contiguous()
    if precision == "fp16":
        return cast(Tensor, torch.ops.quantized.linear_prepack_fp16(weight, bias))
    scale = (weight.abs().amax(1) / 127.0).clamp_min(1e-12).double()
    zero = torch.zeros(weight.shape[0], dtype=torch.long)
    with warnings.catch_warnings():  # quantised tensors are only the packing's input here
        warnings.simplefilter("ignore", UserWarning)
        q = torch.quantize_per_channel(weight, scale, zero, 0, torch.qint8)
        return cast(Tensor, torch.ops.quantized.linear_prepack(q, bias))


class PackedStep:
    """:class:`FusedStep`'s computation with packed ``fp16`` or ``int8`` weights.

    Args:
        fused: the float32 step of the model (weights stacked, batch norm folded).
        precision: ``"fp16"`` or ``"int8"``.
    """

    def __init__(self, fused: FusedStep, precision: StreamPrecision) -> None:
        if precision == "fp32":
            raise ValueError("PackedStep is for fp16/int8; fp32 is FusedStep")
        self.precision = precision
        self.fused = fused  # for initial_state and sizes
        self.nb_bins, self.nb_output_bins = fused.nb_bins, fused.nb_output_bins
        self.input_mean, self.input_scale = fused.input_mean, fused.input_scale
        J = fused.fc1.shape[0]
        with torch.no_grad():
            self.fc1 = [
                _pack(fused.fc1[j].t() * fused.bn1[0][j, :, None], fused.bn1[1][j], precision)
                for j in range(J)
            ]
            self.fc2 = [
                _pack(fused.fc2[j].t() * fused.bn2[0][j, :, None], fused.bn2[1][j], precision)
                for j in range(J)
            ]
            self.fc3 = []
            for j in range(J):  # bn3, then the output scale and mean (per bin, all channels)
                C = fused.fc3.shape[2] // self.nb_output_bins
                out_scale = fused.output_scale[j].repeat(C)
                scale = fused.bn3[0][j] * out_scale
                shift = fused.bn3[1][j] * out_scale + fused.output_mean[j].repeat(C)
                self.fc3.append(_pack(fused.fc3[j].t() * scale[:, None], shift, precision))
            # one product per layer and target: [input, h] @ [w_ih; w_hh]
            self.lstm = [
                [
                    _pack(torch.cat([fused.w_ih[k][j], fused.w_hh[k][j]]).t(), fused.bias[k][j],
                          precision)
                    for j in range(J)
                ]
                for k in range(fused.nb_layers)
            ]  # fmt: skip
        self._linear: Callable[[Tensor, Any], Tensor] = (
            torch.ops.quantized.linear_dynamic_fp16
            if precision == "fp16"
            else lambda x, w: torch.ops.quantized.linear_dynamic(x, w, True)  # reduce_range
        )

    def initial_state(self, nb_samples: int = 1) -> tuple[Tensor, Tensor]:
        """Zero ``h, c (J, nb_layers, S, H)``."""
        return self.fused.initial_state(nb_samples)

    def __call__(
        self, x: Tensor, state: tuple[Tensor, Tensor]
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """As :meth:`FusedStep.forward`: ``x (N, S, C, F)`` → ``(J, N, S, C, F)``, state."""
        outs = []
        for n in range(x.shape[0]):
            y, state = self._frame(x[n], state)
            outs.append(y)
        return torch.stack(outs, 1), state

    def _frame(
        self, x: Tensor, state: tuple[Tensor, Tensor]
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """One frame ``x (S, C, F)`` → ``(J, S, C, F)`` and the new state."""
        lin = self._linear
        S, C, _ = x.shape
        J = len(self.fc1)
        rows = x[None, ..., : self.nb_bins]  # (1, S, C, B)
        z = ((rows + self.input_mean[:, None, None]) * self.input_scale[:, None, None]).reshape(
            J, S, -1
        )
        h1 = torch.tanh(torch.stack([lin(z[j], self.fc1[j]) for j in range(J)]))  # (J, S, Hd)
        h0, c0 = state
        hs, cs = [], []
        inp = h1
        for k, layer in enumerate(self.lstm):
            both = torch.cat([inp, h0[:, k]], -1)  # (J, S, Hd + H)
            gates = torch.stack([lin(both[j], layer[j]) for j in range(J)])  # (J, S, 4H)
            i, f, g, o = gates.chunk(4, -1)
            c = torch.sigmoid(f) * c0[:, k] + torch.sigmoid(i) * torch.tanh(g)
            inp = torch.sigmoid(o) * torch.tanh(c)
            hs.append(inp)
            cs.append(c)
        skip = torch.cat([h1, inp], -1)  # (J, S, 2Hd)
        y = torch.stack([torch.relu(lin(skip[j], self.fc2[j])) for j in range(J)])
        y = torch.stack([lin(y[j], self.fc3[j]) for j in range(J)])  # (J, S, C·F)
        mask = torch.relu(y.reshape(J, S, C, self.nb_output_bins))
        return mask * x, (torch.stack(hs, 1), torch.stack(cs, 1))
