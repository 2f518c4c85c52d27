"""CrossNet-Open-Unmix (X-UMX): one Open-Unmix branch per target, joined by two averages.

Sawata et al., "All for One and One for All: Improving Music Separation by Bridging
Networks", ICASSP 2021. Every branch is a complete :class:`~unmix.model.OpenUnmix`
(same parameter names and shapes, so a branch's state dict is a UMX state dict); the
bridges add no parameters:

1. each branch encodes the mixture: crop, normalise, fc1, bn1, tanh → ``h1_t``;
2. bridge 1: every branch's LSTM reads the average of all ``h1_t``;
3. each branch concatenates its own ``h1_t`` with its LSTM output → ``s_t``;
4. bridge 2: every branch's decoder (fc2, bn2, ReLU, fc3, bn3, output scaling, ReLU)
   reads the average of all ``s_t``; the result is a mask applied to the mixture.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .config import ModelConfig
from .errors import UnmixError
from .model import OpenUnmix


class XUMX(nn.Module):
    """X-UMX for several targets at once.

    Args:
        targets: target names, in output order (the averages do not depend on the order).
        nb_bins: output bins ``F = n_fft // 2 + 1``.
        nb_channels: channels ``C``.
        hidden_size: bottleneck width ``Hd`` of every branch.
        nb_layers: LSTM layers of every branch.
        unidirectional: causal LSTMs.
        max_bin: bins the branches see ``B`` (``None``: all).

    The state dict holds ``branches.<target>.<OpenUnmix name>``.
    """

    def __init__(
        self,
        targets: Sequence[str],
        nb_bins: int,
        nb_channels: int = 2,
        hidden_size: int = 512,
        nb_layers: int = 3,
        unidirectional: bool = False,
        max_bin: int | None = None,
    ) -> None:
        super().__init__()
        if not targets:
            raise UnmixError("X-UMX needs at least one target")
        self.targets = tuple(targets)
        self.branches = nn.ModuleDict(
            {
                target: OpenUnmix(
                    nb_bins=nb_bins,
                    nb_channels=nb_channels,
                    hidden_size=hidden_size,
                    nb_layers=nb_layers,
                    unidirectional=unidirectional,
                    max_bin=max_bin,
                )
                for target in self.targets
            }
        )

    @classmethod
    def from_config(cls, config: ModelConfig) -> XUMX:
        """Build an untrained X-UMX with one branch per ``config.targets``."""
        return cls(
            targets=config.targets,
            nb_bins=config.nb_bins,
            nb_channels=config.nb_channels,
            hidden_size=config.hidden_size,
            nb_layers=config.nb_layers,
            unidirectional=config.unidirectional,
            max_bin=config.max_bin,
        )

    def freeze(self) -> XUMX:
        """Disable gradients and switch to evaluation mode."""
        for p in self.parameters():
            p.requires_grad = False
        return self.eval()

    def branch(self, target: str) -> OpenUnmix:
        """The branch of ``target``."""
        net = self.branches[target]
        assert isinstance(net, OpenUnmix)
        return net

    def forward(self, x: Tensor) -> Tensor:
        """Estimate every target's magnitude.

        Args:
            x: mixture magnitude ``(nb_samples, nb_channels, nb_bins, nb_frames)``.

        Returns:
            target magnitudes ``(nb_samples, nb_channels, nb_bins, nb_frames, nb_targets)``
            in :attr:`targets` order.
        """
        x = x.permute(3, 0, 1, 2)  # (N, S, C, F)
        mix = x.detach().clone()
        nets = [self.branch(t) for t in self.targets]
        h1 = [encode(net, x) for net in nets]  # each (N, S, Hd)
        cross1 = torch.stack(h1).mean(dim=0)
        skips = [
            torch.cat([h, net.lstm(cross1)[0]], dim=-1) for h, net in zip(h1, nets, strict=True)
        ]
        cross2 = torch.stack(skips).mean(dim=0)  # (N, S, 2 Hd)
        masks = [decode(net, cross2, x.shape[2]) for net in nets]  # each (N, S, C, F)
        out = torch.stack(masks, dim=-1) * mix.unsqueeze(-1)  # (N, S, C, F, J)
        return out.permute(1, 2, 3, 0, 4)


def encode(net: OpenUnmix, x: Tensor) -> Tensor:
    """First layer of a branch: ``(N, S, C, F)`` magnitude → ``h1`` ``(N, S, Hd)``."""
    nb_frames, nb_samples, nb_channels, _ = x.shape
    x = x[..., : net.nb_bins]
    x = (x + net.input_mean) * net.input_scale
    x = net.bn1(net.fc1(x.reshape(-1, nb_channels * net.nb_bins)))
    return torch.tanh(x.reshape(nb_frames, nb_samples, net.hidden_size))


def decode(net: OpenUnmix, skip: Tensor, nb_channels: int) -> Tensor:
    """Last layers of a branch: ``(N, S, 2 Hd)`` → non-negative mask ``(N, S, C, F)``."""
    nb_frames, nb_samples, width = skip.shape
    y = torch.relu(net.bn2(net.fc2(skip.reshape(-1, width))))
    y = net.bn3(net.fc3(y))
    y = y.reshape(nb_frames, nb_samples, nb_channels, net.nb_output_bins)
    return torch.relu(y * net.output_scale + net.output_mean)


class TargetSubset(nn.Module):
    """Keep some outputs of a joint model: ``(..., J)`` → ``(..., len(indices))``.

    Args:
        model: a joint model such as :class:`XUMX` (all its targets are still computed:
            the bridges need every branch).
        indices: output positions to keep, in the new order.
    """

    def __init__(self, model: nn.Module, indices: Sequence[int]) -> None:
        super().__init__()
        self.model = model
        self.indices = list(indices)

    def forward(self, x: Tensor) -> Tensor:
        """``(S, C, F, N)`` → ``(S, C, F, N, len(indices))``."""
        out: Tensor = self.model(x)
        return out[..., self.indices]
