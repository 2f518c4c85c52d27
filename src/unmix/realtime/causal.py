"""The causal engine: STFT frame buffer → unidirectional model → causal Wiener → overlap-add.

Framing. Frame ``k`` covers input samples ``[k·hop − (n_fft − hop), (k + 1)·hop)`` (samples
before the start are zeros), so it is complete as soon as sample ``(k + 1)·hop − 1`` has
arrived: it is ``torch.stft(center=False)`` of the input with ``n_fft − hop`` zeros in front.
After frame ``k`` is inverted and overlap-added, the output samples before ``(k + 1)·hop −
(n_fft − hop)`` have all their frames; each is divided by the (periodic) summed squared window.

The state (:class:`CausalState`) is explicit and replaced, never modified in place:

* ``samples``: input not yet framed, ``(C, n_fft − hop + r)`` with ``r < hop``;
* ``lstm``: ``(h, c)``, each ``(J, nb_layers, 1, Hd)`` (:class:`~unmix.realtime.fused.FusedStep`);
* ``wiener``: the causal Wiener accumulators (:mod:`unmix.realtime.wiener`);
* ``tail``: the overlap-add sums of the not yet complete output, ``(J', C, n_fft − hop)``.

:func:`advance` is a pure function of (state, block): a failing call leaves the caller's
state untouched, and the same frames give the same output however the input was cut.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import UnmixError
from ..models.umx import UMX
from ..separator import Separator
from ..transforms import magnitude
from .fused import FusedStep
from .packed import PackedStep, StreamPrecision
from .wiener import CausalWiener, causal_wiener, initial_state


@dataclass(frozen=True)
class CausalState:
    """Everything a causal stream carries between calls (see the module docstring)."""

    samples: Tensor
    lstm: tuple[Tensor, Tensor]
    wiener: tuple[Tensor, ...]
    tail: Tensor


class CausalEngine:
    """Frame-by-frame separation with a unidirectional :class:`~unmix.models.umx.UMX`.

    Args:
        separator: holds the model (unidirectional UMX) and its STFT settings.
        wiener: the causal post-filter settings.
        nb_channels: channels of the stream (the model's own, or 1/2 with up/downmix done
            by the caller).
        precision: the network's weights: ``fp32`` (:class:`FusedStep`, the reference),
            ``fp16`` or ``int8`` (:class:`~unmix.realtime.packed.PackedStep`).

    Raises:
        UnmixError: the model is not a unidirectional UMX, or the STFT cannot be inverted
            frame by frame (hop larger than half the window).
    """

    def __init__(
        self,
        separator: Separator,
        wiener: CausalWiener,
        nb_channels: int,
        precision: StreamPrecision = "fp32",
    ) -> None:
        cfg = separator.config
        if not isinstance(separator.model, UMX) or not cfg.unidirectional:
            raise UnmixError(
                "this model is bidirectional (each frame depends on the whole song), so it "
                "cannot run causally: give a lookahead (--lookahead 1.0) or use a causal "
                "model such as umx-rt-preview"
            )
        if 2 * cfg.n_hop > cfg.n_fft:
            raise UnmixError(f"streaming needs n_hop <= n_fft / 2, got {cfg.n_hop}/{cfg.n_fft}")
        self.model: UMX = separator.model
        fused = FusedStep(separator.model)
        self.precision: StreamPrecision = precision
        self.step: FusedStep | PackedStep = (
            fused if precision == "fp32" else PackedStep(fused, precision)
        )
        self.n_fft, self.n_hop = cfg.n_fft, cfg.n_hop
        self.mono_model = cfg.nb_channels == 1
        self.nb_channels = nb_channels
        self.wiener = wiener
        self.lam = wiener.forgetting(cfg.n_hop, cfg.sample_rate)
        self.nb_sources = len(self.model.targets) + int(wiener.residual)
        self.window = torch.hann_window(self.n_fft)
        # summed squared window at each offset within a hop (the steady state)
        self.envelope = torch.zeros(self.n_hop)
        for start in range(0, self.n_fft, self.n_hop):
            piece = self.window[start : start + self.n_hop].square()
            self.envelope[: piece.shape[0]] += piece

    @property
    def latency(self) -> int:
        """Samples from an input sample to the first moment its output is complete."""
        return self.n_fft - 1

    def initial(self) -> CausalState:
        """The state at the start of a stream (silence before it)."""
        C, keep = self.nb_channels, self.n_fft - self.n_hop
        return CausalState(
            samples=torch.zeros(C, keep),
            lstm=self.step.initial_state(),
            wiener=initial_state(self.wiener, self.nb_sources, C, self.n_fft // 2 + 1),
            tail=torch.zeros(self.nb_sources, C, keep),
        )

    def advance(self, state: CausalState, block: Tensor) -> tuple[Tensor, CausalState]:
        """Take ``block (C, n)``; return the newly completed output ``(J', C, m)`` and the state.

        ``m`` is a multiple of the hop (0 while no new frame is complete).
        """
        samples = torch.cat([state.samples, block], 1)
        nb_frames = (samples.shape[1] - self.n_fft) // self.n_hop + 1
        if nb_frames <= 0:
            empty = block.new_zeros(self.nb_sources, self.nb_channels, 0)
            return empty, CausalState(samples, state.lstm, state.wiener, state.tail)
        frames = samples[:, : (nb_frames - 1) * self.n_hop + self.n_fft]
        frames = frames.unfold(1, self.n_fft, self.n_hop)  # (C, N, n_fft)
        mix = torch.fft.rfft(frames * self.window, dim=-1)  # (C, N, F)
        X = magnitude(mix.transpose(1, 2), mono=self.mono_model)  # (1 or C, F, N)
        x = X.permute(2, 0, 1)[:, None]  # (N, 1, C_m, F)
        V, lstm = self.step(x, state.lstm)  # (J, N, 1, C_m, F)
        V = V[:, :, 0].permute(0, 2, 1, 3)  # (J, C_m, N, F)
        estimates, wiener = causal_wiener(V, mix, self.wiener, self.lam, state.wiener)
        out, tail = self._overlap_add(estimates, state.tail)
        rest = samples[:, nb_frames * self.n_hop :]
        return out, CausalState(rest, lstm, wiener, tail)

    def _overlap_add(self, estimates: Tensor, tail: Tensor) -> tuple[Tensor, Tensor]:
        """Invert ``(J', C, N, F)`` frames onto ``tail``; return N·hop finished samples."""
        nb_frames = estimates.shape[2]
        done, tail = overlap_add_frames(estimates, tail, self.window, self.n_fft, self.n_hop)
        done = (done.reshape(*done.shape[:2], nb_frames, self.n_hop) / self.envelope).flatten(2)
        return done, tail


def overlap_add_frames(
    estimates: Tensor, tail: Tensor, window: Tensor, n_fft: int, n_hop: int
) -> tuple[Tensor, Tensor]:
    """Inverse FFT of ``estimates (J', C, N, F)`` complex frames, windowed by ``window
    (n_fft,)`` and added onto ``tail (J', C, n_fft − n_hop)``, the sums carried from the
    previous call.

    Returns:
        the ``N·n_hop`` samples no later frame touches (not yet divided by the window
        envelope) ``(J', C, N·n_hop)``, and the new tail ``(J', C, n_fft − n_hop)``.
    """
    nb_frames = estimates.shape[2]
    time = torch.fft.irfft(estimates, n=n_fft, dim=-1) * window
    acc = torch.cat([tail, tail.new_zeros(*tail.shape[:2], nb_frames * n_hop)], -1)
    for n in range(nb_frames):
        start = n * n_hop
        acc[..., start : start + n_fft] += time[:, :, n]
    return acc[..., : nb_frames * n_hop], acc[..., nb_frames * n_hop :].clone()
