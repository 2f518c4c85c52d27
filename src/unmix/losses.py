"""Training objectives, all in one place: ``objective(model, mix, targets) -> scalar loss``.

``mix`` is audio ``(S, C, T)`` and ``targets`` audio ``(S, J, C, T)``. Objectives are
modules so that their STFT window follows the model to its device.

:class:`SpectrogramMSE` is the Open-Unmix loss (one target). :class:`XUMXLoss` is the
X-UMX multi-domain combination loss
``L = mcoef · L_time + L_freq`` (Sawata et al. 2021), both averaged with equal weights over
the source combinations (every non-empty proper subset of the ``J`` targets: 14 for four):

* ``L_freq``: mean squared error between ``Σ_{t∈S} estimate_t`` and ``Σ_{t∈S} |STFT(s_t)|``
  (the sum of the individual target magnitudes);
* ``L_time``: ``1 + mean(wSDR)`` over (combination, batch item, channel) rows, with the
  weighted SDR of Choi et al. (Deep Complex U-Net) computed on the ISTFT of the estimates
  (mixture phase) after cutting ``trim`` samples at both ends. ``L_time ∈ [0, 2]``.
"""

from __future__ import annotations

from itertools import combinations
from typing import TYPE_CHECKING, Protocol

import torch
from torch import Tensor, nn

from .errors import UnmixError
from .transforms import ISTFT, STFT, magnitude

if TYPE_CHECKING:
    from .config import ModelConfig

EPS = 1e-10


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
            return magnitude(self.stft(audio.float()), self.mono)

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


def combinations_of(nb_targets: int) -> list[tuple[int, ...]]:
    """Target combinations of the loss: all non-empty proper subsets (``{0}`` for one target).

    Ordered by size, then lexicographically: for four targets 4 singles, 6 pairs, 4 triples.
    """
    if nb_targets == 1:
        return [(0,)]
    return [c for k in range(1, nb_targets) for c in combinations(range(nb_targets), k)]


def combination_matrix(nb_targets: int) -> Tensor:
    """``(K, J)`` 0/1 matrix: row ``k`` marks the targets of combination ``k``."""
    rows = combinations_of(nb_targets)
    matrix = torch.zeros(len(rows), nb_targets)
    for k, members in enumerate(rows):
        matrix[k, list(members)] = 1.0
    return matrix


def frequency_loss(estimates: Tensor, targets: Tensor, matrix: Tensor) -> Tensor:
    """Mean over combinations of the MSE of summed magnitudes.

    Args:
        estimates: estimated magnitudes ``(..., J)``.
        targets: target magnitudes ``(..., J)``.
        matrix: ``(K, J)`` from :func:`combination_matrix`.

    Returns:
        scalar. Computed through the Gram matrix ``MᵀM`` (no ``K``-fold copy of the
        spectrograms): ``Σ_k (Σ_j M_kj D_j)² = Dᵀ (MᵀM) D`` with ``D = estimates − targets``.
    """
    diff = estimates - targets
    gram = (matrix.t() @ matrix).to(diff.dtype)
    per_bin = ((diff @ gram) * diff).sum(dim=-1)
    return per_bin.mean() / matrix.shape[0]


def _cosine(a: Tensor, b: Tensor) -> Tensor:
    num = (a * b).sum(dim=-1)
    den = torch.sqrt(EPS + (a * a).sum(dim=-1)) * torch.sqrt(EPS + (b * b).sum(dim=-1))
    return num / (den + EPS)


def weighted_sdr(estimate: Tensor, reference: Tensor, mixture: Tensor) -> Tensor:
    """Weighted SDR of each row, in ``[-1, 1]`` (−1 is perfect).

    ``α = ‖y‖² / (‖y‖² + ‖n‖² + 1e-10)``, ``n = x − y``, ``n̂ = x − ŷ``;
    ``wSDR = −α·cos(ŷ, y) − (1 − α)·cos(n̂, n)`` with
    ``cos(a, b) = ⟨a, b⟩ / (√(‖a‖² + 1e-10)·√(‖b‖² + 1e-10) + 1e-10)``.

    Args:
        estimate: ``ŷ`` ``(..., T)``.
        reference: ``y`` ``(..., T)``.
        mixture: ``x`` ``(..., T)`` (broadcastable).

    Returns:
        ``(...)``.
    """
    noise = mixture - reference
    noise_est = mixture - estimate
    ref_energy = (reference * reference).sum(dim=-1)
    alpha = ref_energy / (ref_energy + (noise * noise).sum(dim=-1) + EPS)
    return -alpha * _cosine(estimate, reference) - (1 - alpha) * _cosine(noise_est, noise)


def time_loss(
    estimates: Tensor, targets: Tensor, mixture: Tensor, matrix: Tensor, trim: int = 200
) -> Tensor:
    """``1 + mean wSDR`` over (combination, batch item, channel) rows.

    Args:
        estimates: estimated audio ``(S, J, C, L)``.
        targets: target audio ``(S, J, C, T)`` with ``T >= L`` (cut to ``L``).
        mixture: mixture audio ``(S, C, T)`` (cut to ``L``).
        matrix: ``(K, J)`` from :func:`combination_matrix`.
        trim: samples dropped at both ends before scoring.

    Returns:
        scalar in ``[0, 2]``.
    """
    length = estimates.shape[-1]
    if length <= 2 * trim:
        raise UnmixError(
            f"excerpts too short for the X-UMX loss: {length} samples after the ISTFT, "
            f"need more than {2 * trim}"
        )
    m = matrix.to(estimates.dtype)
    window = slice(trim, length - trim)
    est = torch.einsum("kj,sjct->ksct", m, estimates[..., window])
    ref = torch.einsum("kj,sjct->ksct", m, targets[..., :length][..., window])
    mix = mixture[..., :length][..., window].unsqueeze(0)
    return 1 + weighted_sdr(est, ref, mix).mean()


class XUMXLoss(nn.Module):
    """Multi-domain combination loss of X-UMX as a training objective.

    Args:
        config: the model's configuration (STFT settings, targets, channels).
        mcoef: weight of the time-domain term (Default: 10, as the X-UMX recipe).
        trim: samples ignored at both ends of the time-domain term (Default: 200).

    Called as ``objective(model, mix, targets)``; ``model`` maps a mixture magnitude
    ``(S, C, F, N)`` to target magnitudes ``(S, C, F, N, J)`` in ``config.targets`` order
    (:class:`~unmix.models.xumx.XUMX`).
    """

    matrix: Tensor

    def __init__(self, config: ModelConfig, mcoef: float = 10.0, trim: int = 200) -> None:
        super().__init__()
        self.config = config
        self.mcoef = mcoef
        self.trim = trim
        self.stft = STFT(config.n_fft, config.n_hop, center=True)
        self.istft = ISTFT(config.n_fft, config.n_hop, center=True)
        self.register_buffer("matrix", combination_matrix(len(config.targets)), persistent=False)

    def forward(self, model: nn.Module, mix: Tensor, targets: Tensor) -> Tensor:
        """Loss of ``model`` on one batch.

        Args:
            model: joint model, ``(S, C, F, N)`` → ``(S, C, F, N, J)``.
            mix: mixture audio ``(S, C, T)``.
            targets: target audio ``(S, J, C, T)``, targets in ``config.targets`` order.

        Returns:
            scalar loss ``mcoef · L_time + L_freq``.
        """
        self._check(mix, targets)
        if self.matrix.device != mix.device:
            self.to(mix.device)
        mono = self.config.nb_channels == 1
        mix_stft = self.stft(mix)  # (S, C, F, N)
        estimates = model(magnitude(mix_stft, mono))  # (S, Cm, F, N, J)
        target_mag = magnitude(self.stft(targets), mono).movedim(1, -1)  # (S, Cm, F, N, J)
        freq = frequency_loss(estimates, target_mag, self.matrix)
        phase = torch.polar(torch.ones_like(mix_stft.real), mix_stft.angle())
        est_stft = estimates.to(phase.real.dtype) * phase.unsqueeze(-1)  # (S, C, F, N, J)
        est_audio = self.istft(est_stft.movedim(-1, 1))  # (S, J, C, L)
        return self.mcoef * time_loss(est_audio, targets, mix, self.matrix, self.trim) + freq

    def _check(self, mix: Tensor, targets: Tensor) -> None:
        nb_targets = len(self.config.targets)
        if mix.ndim != 3 or targets.ndim != 4:
            raise ValueError(
                f"expected mix (S, C, T) and targets (S, J, C, T), got {tuple(mix.shape)} "
                f"and {tuple(targets.shape)}"
            )
        expected = (mix.shape[0], nb_targets, *mix.shape[1:])
        if tuple(targets.shape) != expected:
            raise ValueError(f"targets must have shape {expected}, got {tuple(targets.shape)}")
