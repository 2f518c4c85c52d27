"""Training objectives: ``objective(model, mix, targets) -> scalar loss``.

``mix`` is audio ``(S, C, T)`` and ``targets`` audio ``(S, J, C, T)``. Objectives are
modules so that their STFT window follows the model to its device.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor, nn

from ..config import ModelConfig
from ..transforms import STFT


class Objective(Protocol):
    """What the trainer calls."""

    def __call__(self, model: nn.Module, mix: Tensor, targets: Tensor) -> Tensor: ...


class SpectrogramMSE(nn.Module):
    """Open-Unmix loss: MSE between the estimated and the true target magnitude.

    STFT ``center=False``; mean over every batch, channel, bin and frame element. The
    mixture magnitude of the last call is kept, so several single-target models trained
    on the same batch share one mixture STFT.

    Args:
        config: model configuration (``n_fft``, ``n_hop``, ``nb_channels``).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.stft = STFT(config.n_fft, config.n_hop, center=False)
        self.mono = config.nb_channels == 1
        self._last: tuple[Tensor, Tensor] | None = None

    def spectrogram(self, audio: Tensor) -> Tensor:
        """Magnitude ``(S, C, F, N)`` of audio ``(S, C, T)`` (float32, also under autocast)."""
        with torch.autocast(audio.device.type, enabled=False):
            spec = self.stft(audio.float())
            # |z| as hypot(re, im): the value of complex abs, about twice as fast on CPU
            mag = torch.hypot(spec.real, spec.imag)
        return mag.mean(dim=1, keepdim=True) if self.mono else mag

    def mix_spectrogram(self, mix: Tensor) -> Tensor:
        """Magnitude of ``mix``, reused while the same tensor is passed again."""
        if self._last is not None and self._last[0] is mix:
            return self._last[1]
        with torch.no_grad():
            mag = self.spectrogram(mix)
        self._last = (mix, mag)
        return mag

    def forward(self, model: nn.Module, mix: Tensor, targets: Tensor) -> Tensor:
        """Args:
            model: maps a mixture magnitude ``(S, C, F, N)`` to a target magnitude.
            mix: ``(S, C, T)``.
            targets: ``(S, 1, C, T)`` (one target).

        Returns:
            scalar loss.
        """
        if targets.shape[1] != 1:
            raise ValueError(f"SpectrogramMSE trains one target, got {targets.shape[1]}")
        estimate = model(self.mix_spectrogram(mix))
        with torch.no_grad():
            truth = self.spectrogram(targets[:, 0])
        return torch.nn.functional.mse_loss(estimate.float(), truth)

    def forget(self) -> None:
        """Drop the cached mixture magnitude (frees memory between batches)."""
        self._last = None
