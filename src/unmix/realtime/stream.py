"""``StreamSeparator``: real-time separation, one block of any size at a time.

The output is a stream of the same length as the input, delayed by exactly
:attr:`StreamSeparator.latency` samples: ``process`` returns as many samples as it was given
(the first ``latency`` output samples are silence), and ``flush`` returns the last
``latency``. Concatenated, the outputs are the same whatever the block sizes (to float
rounding), and an output sample never depends on an input sample that came after it
``latency`` samples earlier.

A block is checked before anything changes (shape, channel count, finite samples, size), and
the engines are pure functions of (state, block) whose result is committed only when the
whole call succeeded: a bad block raises one clear error and the stream goes on as if it had
never been given.
"""

from __future__ import annotations

from pathlib import Path
from typing import overload

import numpy as np
import torch
from torch import Tensor

from ..errors import AudioError, UnmixError
from ..filtering import WienerSettings
from ..hub.loading import load_separator
from ..separator import Separator
from .causal import CausalEngine, CausalState
from .lookahead import LookaheadEngine, LookaheadState, lookahead_engine
from .lookahead_carried import CarriedLookaheadEngine, CarriedState
from .packed import StreamPrecision, check_stream_precision
from .wiener import CausalWiener

#: the shipped causal model, the default of :class:`StreamSeparator`
DEFAULT_STREAM_MODEL = "umx-rt-preview"
#: largest accepted sample magnitude (as unmix.engine.stream.MAX_PEAK: +200 dBFS)
MAX_PEAK = 1e10
#: largest block accepted by one call (10 minutes at 48 kHz)
MAX_BLOCK = 48_000 * 600


class StreamSeparator:
    """Separate a live stream block by block (see the module docstring).

    Args:
        model: a :class:`~unmix.separator.Separator`, or a registry name or model folder
            (loaded on the CPU with its Wiener settings given by ``wiener``).
        lookahead: seconds; ``None`` runs the model causally (unidirectional models only),
            a number runs lookahead mode (any model; latency ``chunk + lookahead``).
        chunk: seconds per separated window step in lookahead mode.
        context: seconds of past context per window in lookahead mode. Default: a
            bidirectional UMX carries its forward LSTM states instead (the whole past, see
            :mod:`unmix.realtime.lookahead_carried`); other models use ``lookahead`` but at
            least ``chunk``. Given, the windowed engine runs (:mod:`unmix.realtime.lookahead`).
        nb_channels: channels of the stream, 1 or 2 (Default: the model's).
        sample_rate: rate of the stream; it must be the model's (resample before, e.g. with
            :class:`unmix.audio.resample.StreamResampler`).
        wiener: causal post-filter settings (Default: those of the separator, with
            ``memory`` 4 s).
        targets: targets to keep when ``model`` is a name or folder.
        precision: the causal network's weights: ``"fp32"`` (default, the reference),
            ``"fp16"`` (half-precision weights, float32 arithmetic) or ``"int8"`` (int8
            weights, inputs quantised per frame); see :mod:`unmix.realtime.packed`. The
            STFT, Wiener filter and overlap-add are float32 in every precision.

    Raises:
        UnmixError: a bidirectional model without ``lookahead``, a rate other than the
            model's, bad sizes.
    """

    def __init__(
        self,
        model: Separator | str | Path = DEFAULT_STREAM_MODEL,
        *,
        lookahead: float | None = None,
        chunk: float = 0.5,
        context: float | None = None,
        nb_channels: int | None = None,
        sample_rate: int | None = None,
        wiener: CausalWiener | None = None,
        targets: list[str] | None = None,
        precision: StreamPrecision | str = "fp32",
    ) -> None:
        self.precision: StreamPrecision = check_stream_precision(precision)
        if self.precision != "fp32" and lookahead is not None:
            raise UnmixError(
                f"precision {self.precision} is for causal streaming; lookahead mode runs the "
                "offline separator in fp32"
            )
        if isinstance(model, Separator):
            separator = model
        else:
            settings = None if wiener is None else _offline(wiener)
            separator = load_separator(model, targets, settings, "cpu", progress=False)
        separator = separator.freeze()
        separator.check_single("real-time separation")
        cfg = separator.config
        rate = cfg.sample_rate
        if sample_rate is not None and sample_rate != rate:
            raise UnmixError(
                f"the stream is at {sample_rate} Hz but the model runs at {rate} Hz: resample "
                "the blocks first (unmix.audio.resample.StreamResampler; 'unmix stream' does it)"
            )
        channels = cfg.nb_channels if nb_channels is None else nb_channels
        if channels not in (1, 2):
            raise UnmixError(f"a stream has 1 or 2 channels, got nb_channels={nb_channels}")
        self.separator = separator
        self.sample_rate = rate
        self.nb_channels = channels
        self.output_names: tuple[str, ...] = separator.output_names
        # a mono stream into a stereo causal model runs on the duplicated signal
        self._upmix = channels == 1 and cfg.nb_channels == 2 and lookahead is None
        engine_channels = 2 if self._upmix else channels
        self.engine: CausalEngine | LookaheadEngine | CarriedLookaheadEngine
        if lookahead is None:
            causal = wiener or CausalWiener.from_settings(separator.wiener)
            self.engine = CausalEngine(separator, causal, engine_channels, self.precision)
            residual = ("residual",) if causal.residual else ()
            self.output_names = (*separator.targets, *residual)
            self._skip = cfg.n_fft - cfg.n_hop  # engine samples before the stream began
        else:
            lookahead_n, chunk_n = _samples(lookahead, rate, "lookahead"), _samples(chunk, rate)
            past = None if context is None else _samples(context, rate, "context")
            self.engine = lookahead_engine(separator, lookahead_n, chunk_n, past, channels)
            self._skip = 0
        self.latency: int = self.engine.latency
        self.reset()

    @property
    def latency_ms(self) -> float:
        """:attr:`latency` in milliseconds."""
        return 1000.0 * self.latency / self.sample_rate

    def reset(self) -> None:
        """Start a new stream (silence before it)."""
        self._state: CausalState | LookaheadState | CarriedState = self.engine.initial()
        self._ready = torch.zeros(len(self.output_names), self.nb_channels, self.latency)
        self._to_skip = self._skip
        self._received = 0

    @overload
    def process(self, block: np.ndarray) -> np.ndarray: ...
    @overload
    def process(self, block: Tensor) -> Tensor: ...
    def process(self, block: np.ndarray | Tensor) -> np.ndarray | Tensor:
        """Separate the next block.

        Args:
            block: ``(nb_channels, n)`` float samples at :attr:`sample_rate`, ``n >= 1``.

        Returns:
            ``(nb_outputs, nb_channels, n)`` float32, outputs in :attr:`output_names` order:
            the input ``latency`` samples ago, separated. Same type as ``block``.

        Raises:
            AudioError: a bad block (nothing changes; the stream stays usable).
        """
        audio = self._checked(block)
        out = self._run(audio, audio.shape[1])
        return out.numpy() if isinstance(block, np.ndarray) else out

    def flush(self) -> np.ndarray:
        """End the stream: the last ``latency`` samples ``(nb_outputs, nb_channels, latency)``.

        Returns a NumPy float32 array (whatever type the blocks had); the stream is reset
        afterwards.
        """
        need = self.latency
        while self._ready.shape[-1] < need:  # push silence until the last input is complete
            self._commit(torch.zeros(self.nb_channels, max(need, 1)))
        out = self._ready[..., :need].clone()
        self.reset()
        return out.numpy()

    def _run(self, audio: Tensor, count: int) -> Tensor:
        self._commit(audio)
        out = self._ready[..., :count]
        self._ready = self._ready[..., count:]
        self._received += count
        return out.contiguous()

    def _commit(self, audio: Tensor) -> None:
        """Advance the engine by ``audio``; the state changes only if it all succeeds."""
        engine_in = audio.expand(2, -1) if self._upmix else audio
        with torch.inference_mode():
            out, state = self.engine.advance(self._state, engine_in)  # type: ignore[arg-type]
            if self._upmix:
                out = out.mean(1, keepdim=True)
        skip = min(self._to_skip, out.shape[-1])
        if not torch.isfinite(out).all():
            raise UnmixError("the model produced NaN or infinite output; the block was dropped")
        self._state = state
        self._to_skip -= skip
        self._ready = torch.cat([self._ready, out[..., skip:]], -1)

    def _checked(self, block: np.ndarray | Tensor) -> Tensor:
        audio = torch.as_tensor(block)
        if audio.ndim != 2 or audio.shape[0] != self.nb_channels:
            raise AudioError(
                f"a block must be (nb_channels={self.nb_channels}, n), got shape "
                f"{tuple(audio.shape)}; open the stream with nb_channels=... to change"
            )
        if not (audio.is_floating_point() and audio.dtype != torch.float16):
            raise AudioError(f"a block must hold float32 samples, got {audio.dtype}")
        if not 1 <= audio.shape[1] <= MAX_BLOCK:
            raise AudioError(f"a block holds 1..{MAX_BLOCK} samples, got {audio.shape[1]}")
        audio = audio.detach().to("cpu", torch.float32)
        if not torch.isfinite(audio).all():
            raise AudioError("the block holds NaN or infinite samples; it was dropped")
        peak = float(audio.abs().max())
        if peak > MAX_PEAK:
            raise AudioError(f"the block holds samples up to {peak:.3g} (full scale is 1.0)")
        return audio.clone()


def _samples(seconds: float, rate: int, what: str = "chunk") -> int:
    if not (isinstance(seconds, int | float) and 0 <= seconds <= 60):
        raise UnmixError(f"{what} must be 0..60 seconds, got {seconds}")
    return int(round(seconds * rate))


def _offline(wiener: CausalWiener) -> WienerSettings:
    return WienerSettings(niter=wiener.niter, softmask=wiener.softmask, residual=wiener.residual)
