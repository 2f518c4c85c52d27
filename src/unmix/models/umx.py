"""Open-Unmix (UMX): one network per target, magnitude spectrogram in, magnitude out.

:class:`OpenUnmix` is one target's network. Layer names, shapes and registration order
equal the reference implementation, so official state dicts load with ``strict=True``
(after dropping the three legacy keys, see :mod:`unmix.hub.weights`). Its forward pass is
split into :meth:`~OpenUnmix.encode`, the LSTM skip and :meth:`~OpenUnmix.decode`, which
X-UMX (:mod:`unmix.models.xumx`) reuses.

:class:`UMX` holds one :class:`OpenUnmix` per target in ``branches`` and is the
:class:`~unmix.models.contract.SeparationModel` of the architecture.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from ..threads import cpu_workers, side_by_side
from . import folded
from .contract import SeparationModel, check_targets

if TYPE_CHECKING:
    from typing import Self

    from ..config import ModelConfig


class OpenUnmix(nn.Module):
    """Open-Unmix (UMX) for one target.

    Args:
        nb_bins: output bins ``F = n_fft // 2 + 1``.
        nb_channels: input/output channels ``C`` (1 or 2).
        hidden_size: bottleneck width ``Hd``.
        nb_layers: LSTM layers.
        unidirectional: causal LSTM with ``H = Hd`` units, else ``H = Hd / 2`` per direction.
        max_bin: bins the network sees ``B`` (``None``: all ``F``).
        input_mean: per-bin dataset mean, length ``>= B`` (stored negated).
        input_scale: per-bin dataset standard deviation, length ``>= B`` (stored inverted).
    """

    def __init__(
        self,
        nb_bins: int,
        nb_channels: int = 2,
        hidden_size: int = 512,
        nb_layers: int = 3,
        unidirectional: bool = False,
        max_bin: int | None = None,
        input_mean: Tensor | Sequence[float] | None = None,
        input_scale: Tensor | Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.nb_output_bins = nb_bins
        self.nb_bins = max_bin if max_bin else nb_bins
        self.nb_channels = nb_channels
        self.hidden_size = hidden_size
        lstm_hidden = hidden_size if unidirectional else hidden_size // 2

        mean = torch.zeros(self.nb_bins)
        scale = torch.ones(self.nb_bins)
        if input_mean is not None:
            mean = -torch.as_tensor(input_mean, dtype=torch.float32)[: self.nb_bins]
        if input_scale is not None:
            scale = 1.0 / torch.as_tensor(input_scale, dtype=torch.float32)[: self.nb_bins]
        # The four vectors are parameters (trained) and come first in the state dict.
        self.input_mean = nn.Parameter(mean.clone().float())
        self.input_scale = nn.Parameter(scale.clone().float())
        self.output_scale = nn.Parameter(torch.ones(nb_bins))
        self.output_mean = nn.Parameter(torch.ones(nb_bins))

        self.fc1 = nn.Linear(self.nb_bins * nb_channels, hidden_size, bias=False)
        self.bn1 = nn.BatchNorm1d(hidden_size)
        self.lstm = nn.LSTM(
            input_size=hidden_size,
            hidden_size=lstm_hidden,
            num_layers=nb_layers,
            bidirectional=not unidirectional,
            batch_first=False,
            dropout=0.4 if nb_layers > 1 else 0.0,
        )
        self.fc2 = nn.Linear(hidden_size * 2, hidden_size, bias=False)
        self.bn2 = nn.BatchNorm1d(hidden_size)
        self.fc3 = nn.Linear(hidden_size, nb_bins * nb_channels, bias=False)
        self.bn3 = nn.BatchNorm1d(nb_bins * nb_channels)

    @classmethod
    def from_config(cls, config: ModelConfig) -> OpenUnmix:
        """Build an untrained network for ``config`` (one target)."""
        return cls(
            nb_bins=config.nb_bins,
            nb_channels=config.nb_channels,
            hidden_size=config.hidden_size,
            nb_layers=config.nb_layers,
            unidirectional=config.unidirectional,
            max_bin=config.max_bin,
        )

    def set_input_statistics(self, mean: Tensor, std: Tensor) -> None:
        """Store ``-mean`` and ``1 / std`` of the first ``B`` bins (``mean, std (>= B,)``)."""
        with torch.no_grad():
            self.input_mean.copy_(-mean[: self.nb_bins].float())
            self.input_scale.copy_(1.0 / std[: self.nb_bins].float())

    def freeze(self) -> OpenUnmix:
        """Disable gradients and switch to evaluation mode."""
        for p in self.parameters():
            p.requires_grad = False
        return self.eval()

    def encode(self, x: Tensor) -> Tensor:
        """Crop, normalise, fc1, bn1, tanh: ``(N, S, C, F)`` magnitude → ``(N, S, Hd)``."""
        nb_frames, nb_samples, nb_channels, _ = x.shape
        x = x[..., : self.nb_bins]
        x = (x + self.input_mean) * self.input_scale
        x = self.bn1(self.fc1(x.reshape(-1, nb_channels * self.nb_bins)))
        return torch.tanh(x.reshape(nb_frames, nb_samples, self.hidden_size))

    def skip(self, h: Tensor) -> Tensor:
        """LSTM with its skip connection: ``(N, S, Hd)`` → ``(N, S, 2 Hd)``."""
        lstm_out, _ = self.lstm(h)
        return torch.cat([h, lstm_out], -1)

    def decode(self, skip: Tensor, nb_channels: int) -> Tensor:
        """fc2, bn2, ReLU, fc3, bn3, output scaling, ReLU: ``(N, S, 2 Hd)`` → mask ``(N, S, C, F)``."""
        nb_frames, nb_samples, width = skip.shape
        y = torch.relu(self.bn2(self.fc2(skip.reshape(-1, width))))
        y = self.bn3(self.fc3(y))
        y = y.reshape(nb_frames, nb_samples, nb_channels, self.nb_output_bins)
        y = y * self.output_scale
        return torch.relu_(y.add_(self.output_mean))  # in place: no more large temporaries

    def step(
        self, x: Tensor, state: tuple[Tensor, Tensor] | None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Streaming forward of a unidirectional network: the next frames, with LSTM state.

        Running consecutive chunks of frames through ``step``, each with the state the
        previous call returned, gives :meth:`forward` of the whole sequence (to rounding).

        Args:
            x: mixture magnitude of the next frames ``(N, S, C, F)`` (frames first).
            state: ``(h, c)``, each ``(nb_layers, S, Hd)``, from the previous call; ``None``
                at the start of a stream (zeros).

        Returns:
            the target magnitude ``(N, S, C, F)`` and the new ``(h, c)``.
        """
        if self.lstm.bidirectional:
            raise ValueError("step() needs a unidirectional (causal) network")
        h = self.encode(x)
        lstm_out, (h_n, c_n) = self.lstm(h, state)
        mask = self.decode(torch.cat([h, lstm_out], -1), x.shape[2])
        return mask * x, (h_n, c_n)

    def forward(self, x: Tensor) -> Tensor:
        """Estimate the target magnitude.

        Args:
            x: mixture magnitude ``(nb_samples, nb_channels, nb_bins, nb_frames)``.

        Returns:
            target magnitude, same shape as ``x``.
        """
        x = x.permute(3, 0, 1, 2)  # (N, S, C, F)
        mix = x.detach()  # no copy: nothing here writes into x
        mask = self.decode(self.skip(self.encode(x)), x.shape[2])
        return (mask * mix).permute(1, 2, 3, 0)

    def forward_into(self, x: Tensor, out: Tensor) -> None:
        """:meth:`forward` written into ``out``, frames and bins swapped: the same values,
        without a temporary result and its copy.

        Args:
            x: mixture magnitude ``(nb_samples, nb_channels, nb_bins, nb_frames)``.
            out: ``(nb_samples, nb_channels, nb_frames, nb_bins)``, any strides (e.g. one
                target of a sources-first buffer); overwritten.
        """
        x = x.permute(3, 0, 1, 2)  # (N, S, C, F)
        if folded.applies(self, x):  # bfloat16 on the CPU: batch norms folded, same network
            folded.forward_into(self, x, out.permute(2, 0, 1, 3))
            return
        mask = self.decode(self.skip(self.encode(x)), x.shape[2])
        torch.mul(mask, x.detach(), out=out.permute(2, 0, 1, 3))


class Branches(SeparationModel):
    """Base of the models made of one :class:`OpenUnmix` branch per target.

    Args:
        branches: ``{target: OpenUnmix}``; the state dict holds
            ``branches.<target>.<OpenUnmix name>``, so ``<target>.pth`` loads into a branch.
    """

    def __init__(self, branches: Mapping[str, OpenUnmix]) -> None:
        super().__init__()
        self.branches = nn.ModuleDict(dict(branches))
        self.targets = tuple(branches)

    @classmethod
    def from_config(cls, config: ModelConfig) -> Self:
        """One untrained :class:`OpenUnmix` per ``config.targets``."""
        return cls({t: OpenUnmix.from_config(config) for t in config.targets})

    def branch(self, target: str) -> OpenUnmix:
        """The network of ``target``."""
        net = self.branches[target]
        assert isinstance(net, OpenUnmix)
        return net

    def set_input_statistics(self, mean: Tensor, std: Tensor) -> None:
        """The same statistics in every branch."""
        for target in self.branches:
            self.branch(target).set_input_statistics(mean, std)


class UMX(Branches):
    """One independent :class:`OpenUnmix` per target (in output order).

    On the CPU the branches run side by side, one thread each, instead of one after the
    other on all threads: the LSTM's thousands of small steps then never wait for each
    other's threads (on busy cores those waits made it many times slower).
    """

    def select_targets(self, targets: Sequence[str]) -> UMX:
        """The branches of ``targets`` only (the others are never run)."""
        return UMX({t: self.branch(t) for t in check_targets(targets, self.targets)})

    def forward(self, x: Tensor) -> Tensor:
        """``(S, C, F, N)`` → ``(S, C, F, N, J)``.

        The result is a view of a sources-first ``(S, J, C, N, F)`` buffer (what the Wiener
        stage reads); without autograd each branch multiplies its mask and the mixture
        straight into it (:meth:`OpenUnmix.forward_into`), with autograd its output is copied.
        """
        S, C, F, N = x.shape
        nets = [self.branch(t) for t in self.targets]
        out = x.new_empty(S, len(nets), C, N, F)
        workers = cpu_workers(x.device, len(nets))
        if x.device.type == "cuda" and CUDA_STREAMS and len(nets) > 1:
            _run_on_streams(nets, x, out)
        elif torch.is_grad_enabled():  # autograd records the copies into out, on this thread
            ys = side_by_side([functools.partial(net, x) for net in nets], workers, "unmix-model")
            for j, y in enumerate(ys):
                out[:, j] = y.transpose(-1, -2)
        else:  # each network writes its share of out (on its own thread with several)
            into = [functools.partial(n.forward_into, x, out[:, j]) for j, n in enumerate(nets)]
            side_by_side(into, workers, "unmix-model")
        return out.permute(0, 2, 4, 3, 1)

    def step(
        self, x: Tensor, states: Sequence[tuple[Tensor, Tensor] | None]
    ) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
        """Streaming forward (unidirectional branches): :meth:`OpenUnmix.step` per target.

        Args:
            x: mixture magnitude of the next frames ``(N, S, C, F)``.
            states: one LSTM state per target (``None`` at the start of a stream).

        Returns:
            target magnitudes ``(J, N, S, C, F)`` and the new states, in target order.
        """
        outs, new_states = [], []
        for target, state in zip(self.targets, states, strict=True):
            y, new = self.branch(target).step(x, state)
            outs.append(y)
            new_states.append(new)
        return torch.stack(outs), new_states


#: on CUDA, run the target networks on their own streams (their LSTMs, latency-bound at
#: small batches, then share the GPU instead of waiting for each other)
CUDA_STREAMS = True


def _run_on_streams(nets: Sequence[nn.Module], x: Tensor, out: Tensor) -> None:
    """``out[:, j] = nets[j](x)`` (frames and bins swapped), each network on a CUDA stream."""
    main = torch.cuda.current_stream(x.device)
    streams = [torch.cuda.Stream(x.device) for _ in nets]  # type: ignore[no-untyped-call]
    for j, (net, stream) in enumerate(zip(nets, streams, strict=True)):
        stream.wait_stream(main)  # x and out are ready
        with torch.cuda.stream(stream):
            x.record_stream(stream)
            out[:, j] = net(x).transpose(-1, -2)
    for stream in streams:
        main.wait_stream(stream)
