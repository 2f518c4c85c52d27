"""Carried lookahead mode (the default): a bidirectional UMX with its forward LSTMs carried.

Frames. Frame ``k`` is centred on sample ``k·hop``, covering ``[k·hop − n_fft/2, k·hop +
n_fft/2)`` (zeros before the stream), as in the offline STFT. Chunk ``c`` is the frames
``[c·b, (c + 1)·b)``; it is separated once its ``a`` frames of lookahead are complete,
i.e. when sample ``((c + 1)·b + a − 1)·hop + n_fft/2 − 1`` has arrived:

* the network (:class:`~unmix.realtime.carried.CarriedBLSTM`) runs on the ``b + a`` frames,
  its forward directions continuing from the previous chunk, so the past costs nothing;
* the Wiener filter (:func:`~unmix.realtime.grid_wiener.grid_wiener`) uses the statistics of
  the offline filter's window as far as they are known;
* the chunk's frames are inverted and overlap-added; samples before ``(c + 1)·b·hop −
  n_fft/2`` are then final.

So ``B = b·hop`` and the lookahead is ``A = (a − 1)·hop + n_fft`` samples; the latency is
``B + A − 1``, and the cost ``(b + a) / b`` times the offline network per frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import UnmixError
from ..models.umx import UMX
from ..separator import Separator
from ..transforms import magnitude
from .carried import CarriedBLSTM, LayerStates
from .causal import overlap_add_frames
from .grid_wiener import GridState, grid_wiener, initial_grid


@dataclass(frozen=True)
class CarriedState:
    """``samples``: input from sample ``chunk·b·hop − n_fft/2`` on (zeros before the
    stream); ``lstm``: forward states; ``wiener``: grid sums; ``tail``: overlap-add sums of
    the output from sample ``chunk·b·hop − n_fft/2`` on ``(J', C, n_fft − hop)``; ``skip``:
    output samples still to drop (the ``n_fft/2`` before the stream began)."""

    samples: Tensor
    chunk: int
    lstm: list[LayerStates]
    wiener: GridState
    tail: Tensor
    skip: int


class CarriedLookaheadEngine:
    """Lookahead mode for a bidirectional UMX with carried forward LSTM states.

    Args:
        separator: a bidirectional UMX separator (its Wiener settings are used).
        lookahead, chunk: ``A`` and ``B`` in samples (rounded down to what the frames
            allow: ``b = max(1, round(B / hop))``, ``a = (A − n_fft) // hop + 1``).
        nb_channels: channels of the stream.

    Raises:
        UnmixError: not a bidirectional UMX, a lookahead under one STFT window.
    """

    def __init__(self, separator: Separator, lookahead: int, chunk: int, nb_channels: int) -> None:
        cfg = separator.config
        if not isinstance(separator.model, UMX) or cfg.unidirectional:
            raise UnmixError(
                "carried lookahead runs bidirectional UMX models; use --lookahead-design window "
                "for other models"
            )
        if lookahead < cfg.n_fft:
            raise UnmixError(
                f"the lookahead must be at least one STFT window ({cfg.n_fft} samples, "
                f"{cfg.n_fft / cfg.sample_rate:.3f} s), got {lookahead}"
            )
        if 2 * cfg.n_hop > cfg.n_fft:
            raise UnmixError(f"streaming needs n_hop <= n_fft / 2, got {cfg.n_hop}/{cfg.n_fft}")
        self.separator = separator
        self.net = CarriedBLSTM(separator.model)
        self.n_fft, self.n_hop = cfg.n_fft, cfg.n_hop
        self.b = max(1, round(chunk / cfg.n_hop))
        self.a = (lookahead - cfg.n_fft) // cfg.n_hop + 1
        self.chunk, self.lookahead = self.b * self.n_hop, (self.a - 1) * self.n_hop + self.n_fft
        self.nb_channels = nb_channels
        self.model_channels = cfg.nb_channels
        self.nb_sources = len(separator.output_names)
        self.window = torch.hann_window(self.n_fft)
        # summed squared window from the first frame's start on (fewer frames at first),
        # as the offline inverse STFT divides; the steady state after n_fft − hop samples
        step = self.b * self.n_hop
        self.partial = -(-(self.n_fft - self.n_hop) // step)  # chunks before the steady state
        env = torch.zeros(self.partial * step + self.n_fft)
        for start in range(0, self.partial * step + 1, self.n_hop):
            env[start : start + self.n_fft] += self.window.square()
        self.first_envelope = env[: self.partial * step].clamp_min(1e-12)
        self.envelope = env[self.partial * step : self.partial * step + self.n_hop]

    @property
    def latency(self) -> int:
        """Samples from an input sample to the first moment its output is complete."""
        return self.chunk + self.lookahead - 1

    def initial(self) -> CarriedState:
        """The state at the start of a stream."""
        C, F = self._channels, self.n_fft // 2 + 1
        return CarriedState(
            samples=torch.zeros(self.nb_channels, self.n_fft // 2),
            chunk=0,
            lstm=self.net.initial(),
            wiener=initial_grid(self.separator.wiener, self.nb_sources, C, F),
            tail=torch.zeros(self.nb_sources, C, self.n_fft - self.n_hop),
            skip=self.n_fft // 2,
        )

    @property
    def _channels(self) -> int:
        """Channels the engine filters (a mono stream into a stereo model is duplicated)."""
        return max(self.nb_channels, self.model_channels)

    def advance(self, state: CarriedState, block: Tensor) -> tuple[Tensor, CarriedState]:
        """Take ``block (C, n)``; return the newly completed chunks ``(J', C, k·B)``."""
        samples = torch.cat([state.samples, block], 1)
        outs = []
        need = (self.b + self.a - 1) * self.n_hop + self.n_fft  # samples of b + a frames
        while samples.shape[1] >= need:
            out, state = self._chunk(samples[:, :need], state)
            outs.append(out)
            samples = samples[:, self.chunk :]
        out = torch.cat(outs, -1) if outs else block.new_zeros(self.nb_sources, self.nb_channels, 0)
        skip = min(state.skip, out.shape[-1])  # the first n_fft/2 samples precede the stream
        state = CarriedState(
            samples, state.chunk, state.lstm, state.wiener, state.tail, state.skip - skip
        )
        return out[..., skip:], state

    def _chunk(self, samples: Tensor, state: CarriedState) -> tuple[Tensor, CarriedState]:
        """Separate one chunk from its ``b + a`` frames of samples."""
        if samples.shape[0] < self._channels:
            samples = samples.expand(self._channels, -1)
        frames = samples.unfold(1, self.n_fft, self.n_hop)  # (C, b + a, n_fft)
        mix = torch.fft.rfft(frames * self.window, dim=-1)  # (C, N, F)
        X = magnitude(mix.transpose(1, 2), mono=self.model_channels == 1)  # (C_m, F, N)
        V, lstm = self.net(X.permute(2, 0, 1)[:, None], self.b, state.lstm)  # (J, N, 1, C_m, F)
        V = V[:, :, 0].permute(0, 2, 1, 3)  # (J, C_m, N, F)
        first = state.chunk * self.b
        y, wiener = grid_wiener(V, mix, first, self.b, self.separator.wiener, state.wiener)
        done, tail = self._overlap_add(y, state.tail, state.chunk)
        if self.nb_channels < self._channels:  # a mono stream: downmix the stems
            done = done.mean(1, keepdim=True)
        return done, CarriedState(samples, state.chunk + 1, lstm, wiener, tail, state.skip)

    def _overlap_add(self, estimates: Tensor, tail: Tensor, chunk: int) -> tuple[Tensor, Tensor]:
        """Invert ``(J', C, b, F)`` frames onto ``tail``; return ``b·hop`` finished samples."""
        nb_frames = estimates.shape[2]
        done, tail = overlap_add_frames(estimates, tail, self.window, self.n_fft, self.n_hop)
        if chunk < self.partial:
            step = self.b * self.n_hop
            done = done / self.first_envelope[chunk * step : (chunk + 1) * step]
        else:
            done = (done.reshape(*done.shape[:2], nb_frames, self.n_hop) / self.envelope).flatten(2)
        return done, tail
