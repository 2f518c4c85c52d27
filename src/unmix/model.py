"""The Open-Unmix network: one target, magnitude spectrogram in, magnitude out.

Layer names, shapes and registration order equal the reference implementation,
so official state dicts load with ``strict=True`` (after dropping the three
legacy keys, see :mod:`unmix.weights`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .config import ModelConfig


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

    def freeze(self) -> OpenUnmix:
        """Disable gradients and switch to evaluation mode."""
        for p in self.parameters():
            p.requires_grad = False
        return self.eval()

    def forward(self, x: Tensor) -> Tensor:
        """Estimate the target magnitude.

        Args:
            x: mixture magnitude ``(nb_samples, nb_channels, nb_bins, nb_frames)``.

        Returns:
            target magnitude, same shape as ``x``.
        """
        x = x.permute(3, 0, 1, 2)  # (N, S, C, F)
        nb_frames, nb_samples, nb_channels, _ = x.shape
        mix = x.detach().clone()
        x = x[..., : self.nb_bins]
        x = (x + self.input_mean) * self.input_scale
        x = self.fc1(x.reshape(-1, nb_channels * self.nb_bins))
        x = self.bn1(x)
        h = torch.tanh(x.reshape(nb_frames, nb_samples, self.hidden_size))
        lstm_out, _ = self.lstm(h)
        x = torch.cat([h, lstm_out], -1)
        x = torch.relu(self.bn2(self.fc2(x.reshape(-1, x.shape[-1]))))
        x = self.bn3(self.fc3(x))
        x = x.reshape(nb_frames, nb_samples, nb_channels, self.nb_output_bins)
        x = x * self.output_scale + self.output_mean
        x = torch.relu(x) * mix
        return x.permute(1, 2, 3, 0)
