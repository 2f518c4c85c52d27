"""Long-audio engine: separate in overlapping segments and cross-fade them.

Peak memory depends on the segment length, not on the length of the song. Audio here is
``float32`` at the model rate, shaped ``(nb_channels, nb_timesteps)``; stems are shaped
``(nb_outputs, nb_channels, nb_timesteps)`` in :attr:`Separator.output_names` order.
No file I/O and no resampling happen here (see :mod:`unmix.audio` and
:mod:`unmix.engine.stream`).

Segment layout: segment ``k`` covers samples ``[k·step, k·step + segment)``; two
neighbours share ``overlap = segment − step`` samples, where the earlier one fades out
and the later one fades in with a raised-cosine (``cos²``/``sin²``) cross-fade. ``step``
is a multiple of ``n_hop · wiener_win_len``, so the STFT frames and the Wiener windows of
every segment coincide with those of whole-track processing. Audio no longer than one
segment goes through a single :class:`~unmix.separator.Separator` call, i.e. it gives
exactly the whole-track result.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import numpy as np

from ..export.graph_separator import as_graph_separator

if TYPE_CHECKING:
    from typing import TypeAlias

    from ..export.graph_separator import GraphSeparator
    from ..separator import Separator

    #: what the engine separates with: a torch separator, or an exported graph run with
    #: numpy (``unmix separate --model FILE.onnx`` imports no PyTorch)
    AnySeparator: TypeAlias = Separator | GraphSeparator

#: default segment and overlap lengths (seconds); see docs/separation.md for the choice
SEGMENT_SECONDS = 60.0
OVERLAP_SECONDS = 8.0


@dataclass(frozen=True)
class SegmentPlan:
    """Segment geometry in samples at the model rate.

    Attributes:
        segment: samples per segment; audio of at most this length is separated whole.
        overlap: samples shared by two neighbouring segments (cross-faded).
    """

    segment: int
    overlap: int

    def __post_init__(self) -> None:
        if not 0 < self.overlap < self.segment:
            raise ValueError(
                f"need 0 < overlap < segment, got overlap {self.overlap}, segment {self.segment}"
            )

    @property
    def step(self) -> int:
        """Distance between the starts of two neighbouring segments."""
        return self.segment - self.overlap

    def nb_segments(self, nb_timesteps: int) -> int:
        """How many segments ``nb_timesteps`` samples give (1 for short audio)."""
        if nb_timesteps <= self.segment:
            return 1
        return 1 + math.ceil((nb_timesteps - self.segment) / self.step)


def plan_segments(
    separator: AnySeparator,
    segment_seconds: float = SEGMENT_SECONDS,
    overlap_seconds: float = OVERLAP_SECONDS,
) -> SegmentPlan:
    """Segment geometry for ``separator``, aligned to its STFT hop and Wiener windows.

    ``segment − overlap`` is rounded to a multiple of ``n_hop · wiener_win_len`` (of
    ``n_hop`` when the Wiener filter sees the whole input) and the overlap to a multiple
    of ``n_hop``; both stay at least one unit long. For an ensemble ``n_hop`` is the least
    common multiple of the members' hops, so the plan is aligned for every member.

    Raises:
        ValueError: non-positive lengths or an overlap not shorter than the segment.
    """
    if segment_seconds <= 0 or overlap_seconds <= 0 or overlap_seconds >= segment_seconds:
        raise ValueError(
            f"need 0 < overlap < segment, got overlap {overlap_seconds} s and "
            f"segment {segment_seconds} s"
        )
    rate, hop = separator.sample_rate, math.lcm(*separator.hops)  # every member's hop
    unit = hop * (separator.wiener.wiener_win_len or 1)
    step = max(1, round((segment_seconds - overlap_seconds) * rate / unit)) * unit
    overlap = max(1, round(overlap_seconds * rate / hop)) * hop
    return SegmentPlan(segment=step + overlap, overlap=overlap)


def fade_in(length: int) -> np.ndarray:
    """Rising raised-cosine weights ``sin²`` of ``length`` samples, strictly inside (0, 1).

    ``1 − fade_in(n)`` is the matching fade-out, so the two always sum to one.
    """
    t = (np.arange(length, dtype=np.float64) + 0.5) / length
    return np.sin(0.5 * np.pi * t).astype(np.float32) ** 2


def crossfade(fading_out: np.ndarray, fading_in: np.ndarray) -> np.ndarray:
    """Blend two estimates of the same ``(..., nb_timesteps)`` span.

    The weights sum to one at every sample, so if both inputs' stems add up to the
    mixture, so does the result.
    """
    w = fade_in(fading_out.shape[-1])
    out: np.ndarray = fading_out + w * (fading_in - fading_out)
    return out


def separate_segment(separator: AnySeparator, audio: np.ndarray) -> np.ndarray:
    """Run the separator once on ``(nb_channels, nb_timesteps)`` audio.

    Audio shorter than one FFT frame is zero-padded for the transform and cut back. An
    exported graph runs on the numpy array itself (no PyTorch).

    Returns:
        stems ``(nb_outputs, nb_channels, nb_timesteps)`` ``float32`` on the CPU.
    """
    length = audio.shape[-1]
    minimum = separator.config.n_fft
    if length < minimum:  # the centred STFT's reflect padding needs n_fft // 2 + 1 samples
        audio = np.pad(audio, ((0, 0), (0, minimum - length)))
    graph = as_graph_separator(separator)
    if graph is not None:
        (stems,) = graph.separate_many([np.ascontiguousarray(audio, dtype=np.float32)])
        return np.ascontiguousarray(stems[..., :length])
    return _torch_segment(cast("Separator", separator), audio, length)


def _torch_segment(separator: Separator, audio: np.ndarray, length: int) -> np.ndarray:
    import torch

    device = next(iter(separator.parameters()), torch.empty(0)).device
    with torch.inference_mode():
        x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None].to(device)
        stems = separator(x)[0, ..., :length]
        return np.ascontiguousarray(stems.float().cpu().numpy())


class StreamingSeparator:
    """Separate a stream of audio blocks segment by segment.

    Feed blocks with :meth:`push` and end with :meth:`finish`; each returns the stems that
    are final so far, in order. Their concatenation has the length of the input.

    Args:
        separator: a frozen :class:`~unmix.separator.Separator`, or a
            :class:`~unmix.export.graph_separator.GraphSeparator`.
        plan: segment geometry, e.g. from :func:`plan_segments`.
    """

    def __init__(self, separator: AnySeparator, plan: SegmentPlan) -> None:
        self.separator = separator
        self.plan = plan
        self._blocks: list[np.ndarray] = []
        self._buffered = 0
        self._tail: np.ndarray | None = None  # previous segment's stems over the overlap
        self.segments_done = 0

    def push(self, audio: np.ndarray) -> list[np.ndarray]:
        """Add ``(nb_channels, n)`` samples; returns finished stems ``(nb_outputs, nb_channels, m)``."""
        return [self._run(segment, last=False) for segment in self._segments(audio)]

    def finish(self) -> list[np.ndarray]:
        """Separate what is left; returns the last stems (none if no audio was given)."""
        rest = self._rest()
        return [] if rest is None else [self._run(rest, last=True)]

    def _segments(self, audio: np.ndarray) -> Iterator[np.ndarray]:
        """Buffer ``audio``; yield the full segments now known not to be the last one."""
        if audio.shape[-1]:
            self._blocks.append(audio)
            self._buffered += audio.shape[-1]
        # a segment is run only once more audio is known to follow it: a whole input of
        # exactly one segment must reach finish() untouched
        while self._buffered > self.plan.segment:
            buffered = self._concat()
            self._blocks = [buffered[:, self.plan.step :]]
            self._buffered = self._blocks[0].shape[-1]
            yield buffered[:, : self.plan.segment]

    def _rest(self) -> np.ndarray | None:
        """The last segment (what is buffered), or ``None`` if nothing is."""
        if not self._buffered:
            return None
        rest = self._concat()
        self._blocks, self._buffered = [], 0
        return rest

    def _concat(self) -> np.ndarray:
        if len(self._blocks) == 1:
            return self._blocks[0]
        return np.concatenate(self._blocks, axis=-1)

    def _run(self, audio: np.ndarray, last: bool) -> np.ndarray:
        return self._join(separate_segment(self.separator, audio), last)

    def _join(self, stems: np.ndarray, last: bool) -> np.ndarray:
        """Cross-fade a segment's stems with the previous one's; the final part of them."""
        self.segments_done += 1
        overlap = self.plan.overlap
        if self._tail is not None:
            stems[..., :overlap] = crossfade(self._tail, stems[..., :overlap])
        if last:
            self._tail = None
            return stems
        self._tail = stems[..., self.plan.step :].copy()
        return stems[..., : self.plan.step]


def separate_long(
    separator: AnySeparator, audio: np.ndarray, plan: SegmentPlan | None = None
) -> np.ndarray:
    """Separate ``(nb_channels, nb_timesteps)`` audio at the model rate in segments.

    Returns:
        stems ``(nb_outputs, nb_channels, nb_timesteps)``.
    """
    engine = StreamingSeparator(separator, plan or plan_segments(separator))
    parts = [*engine.push(audio), *engine.finish()]
    return np.concatenate(parts, axis=-1)
