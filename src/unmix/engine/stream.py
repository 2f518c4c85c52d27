"""The streaming pipeline: blocks at any rate in, stems at the same rate out.

Audio is resampled to the model rate, separated in overlapping segments
(:mod:`unmix.engine.segments`), resampled back and paired with the mixture it came from, so
memory does not grow with the length of the input. Stems keep the input's sample rate,
channel count and length. Every block is checked on the way in (1 or 2 channels, finite,
peak at most :data:`MAX_PEAK`) and every stem block on the way out (finite), so a NaN stem
never reaches a file.
"""

from __future__ import annotations

import sys
from collections.abc import Generator, Iterable, Iterator
from typing import TYPE_CHECKING, cast

import numpy as np

from ..audio.resample import StreamResampler, check_rate
from ..errors import AudioError, UnmixError
from ..wiener_settings import residual_of
from .batcher import BatchedStream, Batcher
from .segments import SegmentPlan, StreamingSeparator, plan_segments

if TYPE_CHECKING:
    import torch

    from .segments import AnySeparator

TOO_MANY_CHANNELS = (
    "{what} has {n} channels; unmix separates mono or stereo audio: downmix it to stereo "
    "first (e.g. ffmpeg -i IN -ac 2 OUT.wav)"
)
#: largest accepted sample magnitude (+200 dBFS; full scale is 1.0). Far above any real
#: audio, far below where the spectrogram's power overflows float32 (about 5e15).
MAX_PEAK = 1e10


def as_channels_first(audio: np.ndarray | torch.Tensor) -> np.ndarray:
    """Accept ``(nb_timesteps,)``, ``(nb_channels, nb_timesteps)`` or ``(nb_timesteps, nb_channels)``."""
    loaded = sys.modules.get("torch")  # a tensor needs torch loaded: none is imported here
    if loaded is not None and isinstance(audio, loaded.Tensor):
        arr = cast("torch.Tensor", audio).detach().cpu().numpy()
    else:
        arr = np.asarray(audio)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise AudioError(f"audio must be 1-D or 2-D (channels, samples), got shape {arr.shape}")
    if arr.shape[0] > arr.shape[1]:
        arr = arr.T
    if arr.shape[0] > 2:
        raise AudioError(TOO_MANY_CHANNELS.format(what="audio", n=arr.shape[0]))
    if arr.shape[1] == 0:
        raise AudioError("audio is empty (0 samples)")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _checked(block: np.ndarray, nb_channels: int | None, what: str) -> np.ndarray:
    """A decoded block, validated: 1 or 2 channels, constant layout, finite, bounded samples."""
    if block.shape[0] > 2:
        raise AudioError(TOO_MANY_CHANNELS.format(what=what, n=block.shape[0]))
    if nb_channels is not None and block.shape[0] != nb_channels:
        raise AudioError(f"{what} changes its channel count mid-stream; convert it first")
    if not np.isfinite(block).all():
        raise AudioError(f"{what} holds NaN or infinite samples")
    peak = float(np.abs(block).max()) if block.size else 0.0
    if peak > MAX_PEAK:
        raise AudioError(
            f"{what} holds samples up to {peak:.3g} (full scale is 1.0, unmix accepts up to "
            f"{MAX_PEAK:.0e}); scale it down first"
        )
    return block


class _Queue:
    """Mixture samples waiting for their stems: ``(nb_channels, n)`` blocks in, exact spans out."""

    def __init__(self) -> None:
        self._blocks: list[np.ndarray] = []
        self.size = 0

    def push(self, block: np.ndarray) -> None:
        self._blocks.append(block)
        self.size += block.shape[-1]

    def pop(self, n: int) -> np.ndarray:
        data = np.concatenate(self._blocks, axis=-1) if len(self._blocks) > 1 else self._blocks[0]
        self._blocks = [data[:, n:]]
        self.size -= n
        return data[:, :n]


class _Pipeline:
    """Input-rate blocks → model-rate segments → input-rate stems paired with their mixture."""

    def __init__(
        self, separator: AnySeparator, sample_rate: int, plan: SegmentPlan | None, what: str,
        batcher: Batcher | None = None,
    ) -> None:  # fmt: skip
        self.separator = separator
        self.rate = check_rate(sample_rate, what)
        self.what = what
        plan = plan or plan_segments(separator)
        self.engine = (
            StreamingSeparator(separator, plan) if batcher is None else batcher.stream(plan)
        )
        self.queue = _Queue()
        self.nb_channels: int | None = None
        self._down: StreamResampler | None = None
        self._up: StreamResampler | None = None

    def push(self, block: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        block = _checked(block, self.nb_channels, self.what)
        if self._down is None or self._up is None:
            self.nb_channels = block.shape[0]
            model_rate = self.separator.sample_rate
            nb_out = len(self.separator.output_names) * self.nb_channels
            self._down = StreamResampler(self.rate, model_rate, self.nb_channels)
            self._up = StreamResampler(model_rate, self.rate, nb_out)
        self.queue.push(block)
        for stems in self.engine.push(self._down.process(block)):
            yield from self._pair(self._up.process(stems.reshape(-1, stems.shape[-1])))

    def finish(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        if self._down is None or self._up is None:
            raise AudioError(f"{self.what} holds no audio samples")
        for stems in [*self.engine.push(self._down.flush()), *self.engine.finish()]:
            yield from self._pair(self._up.process(stems.reshape(-1, stems.shape[-1])))
        yield from self._pair(self._up.flush())
        if self.queue.size:  # the round trip through the model rate fell a sample short
            stems = np.zeros((len(self.separator.output_names), self.nb_channels or 1, 0))
            yield from self._pair(stems.reshape(-1, 0), pad_to=self.queue.size)

    def _pair(self, flat: np.ndarray, pad_to: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        n = min(max(flat.shape[-1], pad_to), self.queue.size)
        if not n:
            return
        if flat.shape[-1] < n:
            flat = np.pad(flat, ((0, 0), (0, n - flat.shape[-1])))
        mix = self.queue.pop(n)
        stems = flat[:, :n].reshape(len(self.separator.output_names), mix.shape[0], n)
        if self.separator.residual:
            # at the output rate, so stems + residual give the input exactly (including
            # any band above the model's Nyquist frequency)
            stems[-1] = residual_of(mix, stems[:-1])
        if not np.isfinite(stems).all():
            raise UnmixError(
                f"{self.what}: the separation gave NaN or infinite stems (broken weights or "
                "numerics); nothing was written for it"
            )
        yield mix, stems


def iter_separate(
    separator: AnySeparator,
    blocks: Iterable[np.ndarray],
    sample_rate: int,
    plan: SegmentPlan | None = None,
    what: str = "the audio",
    batcher: Batcher | None = None,
) -> Generator[tuple[np.ndarray, np.ndarray], None, None]:
    """Separate a stream of audio blocks in bounded memory.

    Args:
        separator: a loaded :class:`Separator`.
        blocks: ``float32`` blocks ``(nb_channels, n)`` at ``sample_rate``, 1 or 2 channels.
        sample_rate: rate of the blocks (Hz); the model rate is reached with soxr.
        plan: segment geometry (Default: :func:`unmix.engine.segments.plan_segments`).
        what: how to name the audio in error messages.
        batcher: run the segments on this :class:`~unmix.engine.batcher.Batcher` (several
            at a time; close the generator if you stop early) instead of one by one here.

    Yields:
        ``(mixture (nb_channels, m), stems (nb_outputs, nb_channels, m))`` at
        ``sample_rate``; the ``m`` add up to the input length exactly.

    Raises:
        AudioError: no samples, more than two channels, NaN, infinite or huge samples, a
            sample rate out of bounds.
        UnmixError: the stems are not finite (nothing of them is yielded).
    """
    pipeline = _Pipeline(separator, sample_rate, plan, what, batcher)
    try:
        for block in blocks:
            yield from pipeline.push(block)
        yield from pipeline.finish()
    finally:
        if isinstance(pipeline.engine, BatchedStream):
            pipeline.engine.close()


def separate_array(
    separator: AnySeparator, audio: np.ndarray | torch.Tensor, sample_rate: int
) -> dict[str, np.ndarray]:
    """Separate ``(nb_channels, nb_timesteps)`` audio at ``sample_rate`` with a loaded separator.

    The audio is resampled to the model rate and the stems back to ``sample_rate``; long
    audio is processed in cross-faded segments. Every stem has the input's shape.

    Returns:
        ``{name: (nb_channels, nb_timesteps) float32}`` in :attr:`Separator.output_names` order.
    """
    x = as_channels_first(audio)
    return collect(separator, iter_separate(separator, [x], int(sample_rate)))


def collect(
    separator: AnySeparator, results: Iterable[tuple[np.ndarray, np.ndarray]]
) -> dict[str, np.ndarray]:
    """Join the stems of :func:`iter_separate` into ``{name: (nb_channels, nb_timesteps)}``."""
    joined = np.concatenate([stems for _, stems in results], axis=-1)
    return {name: joined[k] for k, name in enumerate(separator.output_names)}
