"""End-to-end separation module: audio → STFT → model → Wiener → ISTFT → stems."""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any

from torch import Tensor, nn

from .config import ModelConfig
from .errors import UnmixError
from .filtering import DEFAULT_WIENER, WienerSettings, frame_windows, wiener_groups
from .heap import keep_freed_memory
from .models.contract import SeparationModel
from .precision import DEFAULT_PRECISION, Precision, network_precision, parse_precision
from .shifts import average_shifted, check_shifts, shift_offsets
from .stereo_em import GROUP_FRAMES
from .transforms import ISTFT, STFT, magnitude


class Separator(nn.Module):
    """Separate a mixture into its targets.

    Args:
        model: any :class:`~unmix.models.contract.SeparationModel`; its targets are the
            outputs, in its order.
        config: STFT settings and channel count of the model.
        wiener: the Wiener post-filter options. With a single target and no residual there
            is nothing to refine: ``niter`` is set to 0, with a warning.
        shifts: separate this many time-shifted copies and average them
            (:mod:`unmix.shifts`); 1 is plain separation.
        precision: what the network runs in (:mod:`unmix.precision`; check the device
            with :func:`~unmix.precision.check_precision`); the Wiener stage stays float32.
    """

    #: time-shifted copies averaged by :meth:`forward` (:mod:`unmix.shifts`)
    shifts: int = 1
    #: the network's precision (:mod:`unmix.precision`)
    precision: Precision = DEFAULT_PRECISION

    def __init__(
        self,
        model: SeparationModel,
        config: ModelConfig,
        wiener: WienerSettings = DEFAULT_WIENER,
        shifts: int = 1,
        precision: Precision = DEFAULT_PRECISION,
    ) -> None:
        super().__init__()
        self.config = config
        self.model = model
        self.targets: tuple[str, ...] = tuple(model.targets)
        if len(self.targets) == 1 and not wiener.residual and wiener.niter > 0:
            warnings.warn(
                "one target without residual: the Wiener EM has nothing to refine, "
                "using niter=0 (add residual=True to refine against the rest of the mix)",
                stacklevel=2,
            )
            wiener = dataclasses.replace(wiener, niter=0)
        self.wiener = wiener
        self.shifts = check_shifts(shifts)
        self.precision = parse_precision(precision)
        self.stft = STFT(config.n_fft, config.n_hop, center=True)
        self.istft = ISTFT(config.n_fft, config.n_hop, center=True)

    @property
    def sample_rate(self) -> int:
        """Rate the model expects (Hz)."""
        return self.config.sample_rate

    @property
    def residual(self) -> bool:
        """Whether a ``residual`` output follows the targets."""
        return self.wiener.residual

    @property
    def output_names(self) -> tuple[str, ...]:
        """Names of the stacked outputs: the targets, then ``residual`` if enabled."""
        return (*self.targets, "residual") if self.residual else self.targets

    @property
    def hops(self) -> tuple[int, ...]:
        """STFT hops of the networks (samples): one here, one per member in an ensemble."""
        return (self.config.n_hop,)

    @property
    def shift_offsets(self) -> tuple[int, ...]:
        """Delays (samples) of the :attr:`shifts` copies: fractions of the hop, 0 first."""
        return shift_offsets(self.shifts, math.gcd(*self.hops))

    def settings_record(self) -> dict[str, Any]:
        """What else decides the stems besides model, targets and Wiener options, for the
        ``.unmix.json`` record of outputs; empty for plain separation, so that records
        written before these settings existed still match."""
        record: dict[str, Any] = {"shifts": self.shifts} if self.shifts > 1 else {}
        if self.precision != DEFAULT_PRECISION:
            record["precision"] = self.precision
        return record

    def check_single(self, what: str) -> None:
        """Refuse (one line) to hand averaging separations to ``what``, which runs one
        model once (export, real time).

        Raises:
            UnmixError: ``shifts > 1`` (or an ensemble, see :class:`unmix.ensemble.Ensemble`).
        """
        if self.shifts > 1:
            raise UnmixError(
                f"{what} runs one model once; --shifts {self.shifts} is for unmix separate "
                "and unmix evaluate (leave it out)"
            )

    def freeze(self) -> Separator:
        """Disable gradients and switch to evaluation mode."""
        for p in self.parameters():
            p.requires_grad = False
        return self.eval()

    def forward(self, audio: Tensor) -> Tensor:
        """Separate (the mean over :attr:`shifts` shifted copies; one copy by default).

        Args:
            audio: mixture ``(nb_samples, nb_channels, nb_timesteps)`` at :attr:`sample_rate`;
                one- or two-channel.

        Returns:
            stems ``(nb_samples, nb_outputs, nb_channels, nb_timesteps)``, outputs ordered as
            :attr:`output_names`.
        """
        if audio.ndim != 3:
            raise ValueError(
                f"audio must be (nb_samples, nb_channels, nb_timesteps), got {tuple(audio.shape)}"
            )
        keep_freed_memory()  # its large temporaries are reused, not faulted in again
        if self.shifts == 1:
            return self.separate_once(audio)
        return average_shifted(self.separate_once, audio, self.shift_offsets)

    def separate_once(self, audio: Tensor) -> Tensor:
        """Separate without shifts: ``(S, C, T)`` mixture → ``(S, J', C, T)`` stems."""
        if audio.shape[1] == 1 and self.config.nb_channels == 2:
            # mono into a stereo model: separate the duplicated signal, then downmix the stems
            return self.separate_once(audio.expand(-1, 2, -1)).mean(dim=2, keepdim=True)
        if audio.shape[1] not in (1, 2):
            raise ValueError(f"audio must have 1 or 2 channels, got {audio.shape[1]}")
        mix_stft = self.stft(audio)  # (S, C, F, N) complex
        X = magnitude(mix_stft, mono=self.config.nb_channels == 1)
        return self.wiener_istft(self.source_magnitudes(X), mix_stft, X, audio.shape[-1])

    def wiener_istft(self, V: Tensor, mix_stft: Tensor, X: Tensor, length: int) -> Tensor:
        """The stems from the model magnitudes: Wiener filter, then inverse STFT.

        Args:
            V: model magnitudes ``(S, J, C_model, N, F)`` (:meth:`source_magnitudes`).
            mix_stft: complex mixture STFT ``(S, C, F, N)``.
            X: the model input ``magnitude(mix_stft)`` ``(S, C_model, F, N)``.
            length: samples of the stems.

        Returns:
            stems ``(S, J', C, length)``.
        """
        mix = mix_stft.transpose(-1, -2)  # (S, C, N, F), a view: torch.stft stores bins last
        # |mix| for the Wiener stage: the model input, unless that is a mono downmix
        mag = X.transpose(-1, -2) if X.shape[1] == mix.shape[1] else None
        nb_samples, nb_channels, nb_frames = mix.shape[:3]
        out = mix.real.new_zeros(
            nb_samples, len(self.output_names), nb_channels, self.istft.padded_length(nb_frames)
        )
        # Wiener-filter and invert one window at a time, and within it (stereo, CPU) a few
        # frames at a time: only the accumulator (S, J', C, T) and the current group's
        # estimates are held, and the group is inverted while it is still in the cache (a
        # GPU takes whole windows: fewer, larger kernels)
        group = GROUP_FRAMES if mix.device.type == "cpu" else None
        for s in range(nb_samples):
            for window in frame_windows(nb_frames, self.wiener.wiener_win_len):
                groups = wiener_groups(
                    V[s, :, :, window],
                    mix[s, :, window],
                    self.wiener,
                    group,
                    None if mag is None else mag[s, :, window],
                )
                for first, estimates in groups:  # (J', C, n, F)
                    self.istft.overlap_add(estimates, out[s], window.start + first)
        return self.istft.normalize(out, nb_frames, length)

    def source_magnitudes(self, X: Tensor) -> Tensor:
        """Model magnitudes for all targets, sources-first for the Wiener stage.

        Args:
            X: mixture magnitude ``(S, C_model, F, N)``.

        Returns:
            ``(S, J, C_model, N, F)``.
        """
        with network_precision(self.precision, X.device):
            out: Tensor = self.model(X)  # (S, C, F, N, J)
        return out.float().permute(0, 4, 1, 3, 2)  # float32 for the Wiener stage

    def to_dict(self, estimates: Tensor) -> dict[str, Tensor]:
        """Map ``(S, J', C, T)`` estimates to ``{name: (S, C, T)}``."""
        return {name: estimates[:, k] for k, name in enumerate(self.output_names)}
