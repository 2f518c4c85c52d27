"""A bidirectional UMX run chunk by chunk, its forward LSTM directions carried.

The latency-controlled BLSTM scheme: each LSTM layer is run direction by direction. The
forward direction starts from the state it reached at the end of the previous chunk, so it
has seen the whole past at no extra cost; the backward direction starts from zeros at the
end of the chunk's lookahead. Layer ``k + 1`` reads both directions of layer ``k`` over the
chunk and its lookahead. With a lookahead that reaches the end of the input this is the
model's own forward pass (to float rounding).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import UnmixError
from ..models.umx import UMX, OpenUnmix

#: the forward states of one target: ``(h, c)`` per layer, each ``(1, S, H)``
LayerStates = tuple[tuple[Tensor, Tensor], ...]


def _split_lstm(lstm: nn.LSTM) -> list[tuple[nn.LSTM, nn.LSTM]]:
    """One single-layer LSTM per layer and direction, sharing the weights of ``lstm``."""
    if not lstm.bidirectional:
        raise UnmixError("carried lookahead needs a bidirectional model")
    layers = []
    for k in range(lstm.num_layers):
        pair = []
        for suffix in ("", "_reverse"):
            size = lstm.input_size if k == 0 else 2 * lstm.hidden_size
            one = nn.LSTM(size, lstm.hidden_size, 1)
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                setattr(one, f"{name}_l0", getattr(lstm, f"{name}_l{k}{suffix}"))
            one.flatten_parameters()
            pair.append(one.eval())
        layers.append((pair[0], pair[1]))
    return layers


class CarriedBLSTM:
    """Chunk-by-chunk magnitudes of a bidirectional :class:`~unmix.models.umx.UMX`.

    Args:
        model: the model (every branch bidirectional).
    """

    def __init__(self, model: UMX) -> None:
        self.nets: list[OpenUnmix] = [model.branch(t) for t in model.targets]
        self.layers = [_split_lstm(net.lstm) for net in self.nets]

    def initial(self, nb_samples: int = 1) -> list[LayerStates]:
        """Zero forward states, one tuple per target."""
        out = []
        for net, layers in zip(self.nets, self.layers, strict=True):
            size = net.lstm.hidden_size
            zero = torch.zeros(1, nb_samples, size)
            out.append(tuple((zero, zero) for _ in layers))
        return out

    def __call__(
        self, x: Tensor, nb_chunk: int, states: list[LayerStates]
    ) -> tuple[Tensor, list[LayerStates]]:
        """Magnitudes of the chunk's frames.

        Args:
            x: mixture magnitude of the chunk and its lookahead ``(N, S, C, F)``.
            nb_chunk: frames of the chunk (the first ``nb_chunk`` of ``x``), ``1..N``.
            states: forward states at the chunk's start (:meth:`initial`, or the last call's).

        Returns:
            target magnitudes of all frames ``(J, N, S, C, F)`` (those after the chunk are
            the lookahead's provisional ones) and the forward states at the chunk's end
            (those passed in are not modified).
        """
        outs, new_states = [], []
        for net, layers, state in zip(self.nets, self.layers, states, strict=True):
            h = net.encode(x)
            inp, carried = h, []
            for (fwd, bwd), start in zip(layers, state, strict=True):
                head, end = fwd(inp[:nb_chunk], start)
                tail, _ = fwd(inp[nb_chunk:], end) if inp.shape[0] > nb_chunk else (head[:0], end)
                back, _ = bwd(inp.flip(0))
                inp = torch.cat([torch.cat([head, tail]), back.flip(0)], -1)
                carried.append((end[0], end[1]))
            outs.append(net.decode(torch.cat([h, inp], -1), x.shape[2]) * x)
            new_states.append(tuple(carried))
        return torch.stack(outs), new_states
