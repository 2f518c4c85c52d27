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

In lookahead mode with ``background=True`` the engine runs on a worker thread
(:mod:`unmix.realtime.background`): each call only hands its block over and returns
finished output, and the output comes one chunk later (the same samples). An error of the
background compute is raised by the call that needs its output, and the stream is reset.
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import overload

import numpy as np
import torch
from torch import Tensor

from ..errors import AudioError, UnmixError
from ..filtering import WienerSettings
from ..hub.loading import load_separator
from ..separator import Separator
from .background import ChunkWorker
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

_Engine = CausalEngine | LookaheadEngine | CarriedLookaheadEngine
_State = CausalState | LookaheadState | CarriedState


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
        background: lookahead mode only: compute each chunk on a worker thread while the
            next blocks come in (:mod:`unmix.realtime.background`), for blocks shorter than
            a chunk; the output is the same samples one chunk later (``latency`` grows by
            :attr:`background_latency`, one chunk), and no call waits for a chunk's compute
            unless the worker is more than a chunk behind. An error of the background
            compute is raised by the call that needed its output, and the stream is reset.

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
        background: bool = False,
    ) -> None:
        if background and lookahead is None:
            raise UnmixError(
                "background chunk computation is for lookahead mode (give a lookahead); the "
                "causal mode computes each block as it comes"
            )
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
        self.engine: _Engine
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
        self.background = background
        #: samples the background computation adds to the latency: one chunk (else 0)
        self.background_latency = 0
        if background and not isinstance(self.engine, CausalEngine):
            self.background_latency = self.engine.chunk
        self.latency: int = self.engine.latency + self.background_latency
        self._worker: ChunkWorker[_State] | None = None
        #: background: calls that had to wait for the worker (more than a chunk behind; not
        #: reset by :meth:`reset`)
        self.waits = 0
        #: background: the scheduling the last worker thread ran at (``None``: none ran yet)
        self.worker_priority: str | None = None
        self.reset()

    @property
    def latency_ms(self) -> float:
        """:attr:`latency` in milliseconds."""
        return 1000.0 * self.latency / self.sample_rate

    def reset(self) -> None:
        """Start a new stream (silence before it)."""
        if self._worker is not None:
            self._worker_end()
            self.worker_priority = self._worker.priority
            self._worker = None
        self._state: _State = self.engine.initial()
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
            UnmixError: a non-finite model output (the block is dropped; with ``background``
                the stream is reset instead, see the module docstring).
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
        if self.background:  # the same silence as without, then more until enough came back
            silence = torch.zeros(self.nb_channels, max(self.engine.latency, 1))
            worker = self._running_worker()
            while self._ready.shape[-1] < need:
                worker.submit(silence)
                self._collect(worker, until=need, everything=True)
        while self._ready.shape[-1] < need:  # push silence until the last input is complete
            self._commit(torch.zeros(self.nb_channels, max(need, 1)))
        out = self._ready[..., :need].clone()
        self.reset()
        return out.numpy()

    def _run(self, audio: Tensor, count: int) -> Tensor:
        if self.background:
            worker = self._running_worker()
            worker.submit(audio)
            self._collect(worker, until=count)
        else:
            self._commit(audio)
        out = self._ready[..., :count]
        self._ready = self._ready[..., count:]
        self._received += count
        return out.contiguous()

    def _commit(self, audio: Tensor) -> None:
        """Advance the engine by ``audio``; the state changes only if it all succeeds."""
        with torch.inference_mode():
            out, state = _advance(self.engine, self._upmix, self._state, audio)
        if not torch.isfinite(out).all():
            raise UnmixError("the model produced NaN or infinite output; the block was dropped")
        self._state = state
        self._append(out)

    def _append(self, out: Tensor) -> None:
        skip = min(self._to_skip, out.shape[-1])
        self._to_skip -= skip
        self._ready = torch.cat([self._ready, out[..., skip:]], -1)

    def _running_worker(self) -> ChunkWorker[_State]:
        """The background worker, started (from the stream's state) on first use."""
        if self._worker is None:
            advance = _Advance(self.engine, self._upmix)
            self._worker = ChunkWorker(advance, self._state)
            self._worker_end = weakref.finalize(self, self._worker.stop)
        return self._worker

    def _collect(self, worker: ChunkWorker[_State], until: int, everything: bool = False) -> None:
        """Take the finished outputs, then wait until ``until`` samples are ready (or all
        pending ones have come back, with ``everything``); a worker's error resets the stream."""
        waited = False
        try:
            while worker.pending:
                out = worker.result(wait=False)
                if out is None:
                    if self._ready.shape[-1] >= until and not everything:
                        break
                    waited = True
                    out = worker.result(wait=True)
                assert out is not None
                if not torch.isfinite(out).all():
                    raise UnmixError(
                        "the model produced NaN or infinite output in a chunk computed in the "
                        "background; the stream was reset"
                    )
                self._append(out)
        except BaseException:
            self.reset()
            raise
        self.waits += waited and not everything

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


class _Advance:
    """The stream's pure step ``(state, block) -> (output, state)``, for the worker thread
    (holding the engine, not the stream, so that a forgotten stream's worker ends)."""

    def __init__(self, engine: _Engine, upmix: bool) -> None:
        self.engine, self.upmix = engine, upmix

    def __call__(self, state: _State, audio: Tensor) -> tuple[Tensor, _State]:
        return _advance(self.engine, self.upmix, state, audio)


def _advance(engine: _Engine, upmix: bool, state: _State, audio: Tensor) -> tuple[Tensor, _State]:
    """``engine.advance`` of ``audio (C, n)`` (duplicated into a stereo causal model)."""
    engine_in = audio.expand(2, -1) if upmix else audio
    out, state = engine.advance(state, engine_in)  # type: ignore[arg-type]
    if upmix:
        out = out.mean(1, keepdim=True)
    return out, state


def _samples(seconds: float, rate: int, what: str = "chunk") -> int:
    if not (isinstance(seconds, int | float) and 0 <= seconds <= 60):
        raise UnmixError(f"{what} must be 0..60 seconds, got {seconds}")
    return int(round(seconds * rate))


def _offline(wiener: CausalWiener) -> WienerSettings:
    return WienerSettings(niter=wiener.niter, softmask=wiener.softmask, residual=wiener.residual)
