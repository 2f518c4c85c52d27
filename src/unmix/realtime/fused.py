"""All targets of a unidirectional UMX as one batched step (the streaming model).

Running four small networks one frame at a time is dominated by per-call overhead, not by
arithmetic: ``nn.LSTM`` alone costs about 0.4 ms per frame and branch. :class:`FusedStep`
stacks the weights of every branch (``J`` targets) and runs them together with batched
matrix products; batch norm (evaluation mode) is folded into a scale and shift, and the LSTM
is unrolled by hand. It computes :meth:`unmix.models.umx.OpenUnmix.step` for every target
(equal to rounding; a test checks it), with the per-step state explicit:
``h, c (J, nb_layers, S, H)``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..models.umx import UMX, OpenUnmix


def _folded_bn(bn: nn.BatchNorm1d) -> tuple[Tensor, Tensor]:
    """Evaluation-mode batch norm as ``x · scale + shift``."""
    assert bn.running_var is not None and bn.running_mean is not None
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


class FusedStep(nn.Module):
    """The streaming forward of all branches of a unidirectional :class:`UMX` at once.

    Args:
        model: the (frozen, unidirectional) model; its weights are copied.
    """

    def __init__(self, model: UMX) -> None:
        super().__init__()
        nets: list[OpenUnmix] = [model.branch(t) for t in model.targets]
        first = nets[0]
        self.nb_bins, self.nb_output_bins = first.nb_bins, first.nb_output_bins
        self.hidden = first.hidden_size
        self.nb_layers = first.lstm.num_layers
        self.lstm_hidden = first.lstm.hidden_size

        def stack(get: object) -> Tensor:
            return torch.stack([get(n) for n in nets]).detach().clone()  # type: ignore[operator]

        with torch.no_grad():
            self.input_mean = stack(lambda n: n.input_mean)  # (J, B)
            self.input_scale = stack(lambda n: n.input_scale)
            self.output_scale = stack(lambda n: n.output_scale)  # (J, F)
            self.output_mean = stack(lambda n: n.output_mean)
            # (J, C·B, Hd) as a transposed view: the matrix-vector product with contiguous
            # rows of the (Hd, C·B) weight is about 3 times faster for this wide input
            self.fc1 = stack(lambda n: n.fc1.weight).transpose(1, 2)
            self.bn1 = [stack(lambda n, k=k: _folded_bn(n.bn1)[k]) for k in (0, 1)]
            self.fc2 = stack(lambda n: n.fc2.weight.t())  # (J, 2Hd, Hd)
            self.bn2 = [stack(lambda n, k=k: _folded_bn(n.bn2)[k]) for k in (0, 1)]
            self.fc3 = stack(lambda n: n.fc3.weight.t())  # (J, Hd, C·F)
            self.bn3 = [stack(lambda n, k=k: _folded_bn(n.bn3)[k]) for k in (0, 1)]
            self.w_ih = [stack(lambda n, k=k: getattr(n.lstm, f"weight_ih_l{k}").t())
                         for k in range(self.nb_layers)]  # fmt: skip
            self.w_hh = [stack(lambda n, k=k: getattr(n.lstm, f"weight_hh_l{k}").t())
                         for k in range(self.nb_layers)]  # fmt: skip
            self.bias = [
                stack(lambda n, k=k: getattr(n.lstm, f"bias_ih_l{k}") + getattr(n.lstm, f"bias_hh_l{k}"))
                for k in range(self.nb_layers)
            ]  # fmt: skip

    def initial_state(self, nb_samples: int = 1) -> tuple[Tensor, Tensor]:
        """Zero ``h, c (J, nb_layers, S, H)``."""
        shape = (self.fc1.shape[0], self.nb_layers, nb_samples, self.lstm_hidden)
        return torch.zeros(shape), torch.zeros(shape)

    def forward(
        self, x: Tensor, state: tuple[Tensor, Tensor]
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Args:
            x: mixture magnitude of the next frames ``(N, S, C, F)``.
            state: ``h, c (J, nb_layers, S, H)``.

        Returns:
            target magnitudes ``(J, N, S, C, F)`` and the new state.
        """
        N, S, C, _ = x.shape
        J = self.fc1.shape[0]
        rows = x[None, ..., : self.nb_bins]  # (1, N, S, C, B)
        z = (rows + self.input_mean[:, None, None, None]) * self.input_scale[:, None, None, None]
        h = torch.bmm(z.reshape(J, N * S, C * self.nb_bins), self.fc1)  # (J, NS, Hd)
        h = torch.tanh(h * self.bn1[0][:, None] + self.bn1[1][:, None])
        out, new_h, new_c = self._lstm(h.reshape(J, N, S, self.hidden), state)
        skip = torch.cat([h, out.reshape(J, N * S, self.hidden)], -1)
        y = torch.relu(torch.bmm(skip, self.fc2) * self.bn2[0][:, None] + self.bn2[1][:, None])
        y = torch.bmm(y, self.fc3) * self.bn3[0][:, None] + self.bn3[1][:, None]
        y = y.reshape(J, N, S, C, self.nb_output_bins)
        mask = torch.relu(
            y * self.output_scale[:, None, None, None] + self.output_mean[:, None, None, None]
        )
        return mask * x, (new_h, new_c)

    def _lstm(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """Unidirectional multi-layer LSTM over ``x (J, N, S, Hd)``, gates ordered i, f, g, o."""
        h0, c0 = state
        J, N, S, _ = x.shape
        hs, cs = [], []
        inp = x
        for k in range(self.nb_layers):
            gates_x = torch.bmm(inp.reshape(J, N * S, -1), self.w_ih[k]) + self.bias[k][:, None]
            gates_x = gates_x.reshape(J, N, S, -1)
            h, c = h0[:, k], c0[:, k]
            outs = []
            for n in range(N):
                gates = gates_x[:, n] + torch.bmm(h, self.w_hh[k])
                i, f, g, o = gates.chunk(4, -1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                outs.append(h)
            inp = torch.stack(outs, 1)  # (J, N, S, H)
            hs.append(h)
            cs.append(c)
        return inp, torch.stack(hs, 1), torch.stack(cs, 1)
