"""The separation graph in parts, so that the Wiener filter and the ISTFT run on short runs
of frames (onnxruntime ``Scan`` bodies) instead of on whole 60-s tensors.

A traced whole-input graph (:class:`~unmix.export.graph.SeparationGraph`) holds tensors of
every frame of every stem at once (a 60-s umxhq segment: 0.3–0.7 GB each, 3.5 GB at the
peak) and onnxruntime, which fuses no elementwise operators on the CPU, streams each of
them through memory dozens of times. Here the same maths is cut where frames stop
depending on each other:

* :class:`Head` — waveform → STFT (frames first), the model, magnitudes; frames padded to
  whole chunks of ``c`` frames and grouped ``(K, c, …)``.
* :class:`ChunkStats` (a ``Scan`` body, once per EM iteration) — one chunk's share of the
  window sums the EM step needs (and of the mixture's peak).
* :class:`WindowGains` — chunk sums → window statistics, repeated for every chunk (the
  last window may hold fewer chunks).
* :class:`ChunkFilter` (a ``Scan`` body) — one chunk through every EM step, the inverse
  DFT and the overlap-add of its frames; what its last ``R − 1`` frames add to the next
  chunk's samples is carried to the next iteration (a ``Scan`` state), so each chunk
  comes out finished: ``(B, c · n_hop)`` samples.
* :class:`Tail` — the chunks' samples in order, divided by Σ window², cut to length.

:mod:`unmix.export.compose` traces each part and joins them into one ONNX graph; the
stems equal the whole-input graph's up to the order of float32 sums.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional

from ..filtering import WienerSettings
from ..separator import Separator
from .folding import folded_branches
from .spectral import GraphISTFT, GraphSTFT
from .wiener import (
    Pair,
    _amplitudes,
    _stats,
    _stats_from_amplitudes,
    apply_gains,
    apply_mono,
    mono_gains,
    window_gains,
)

#: frames per chunk aimed at (a divisor of the Wiener window near this): small enough for
#: a chunk's stems to stay in the CPU's cache, large enough for the per-call overhead
CHUNK_FRAMES = 12


@dataclass(frozen=True)
class ChunkPlan:
    """How frames are grouped.

    Attributes:
        frames: ``c``, frames per chunk.
        per_window: chunks per Wiener window (``None``: one window over all frames).
        niter: EM iterations.
        stereo: whether the EM is the two-channel one.
    """

    frames: int
    per_window: int | None
    niter: int
    stereo: bool

    @property
    def nb_sums(self) -> int:
        """Window sums per target: 4 (stereo), 1 (one channel)."""
        return 4 if self.stereo else 1


def plan_chunks(wiener: WienerSettings, nb_channels: int, overhang: int = 3) -> ChunkPlan | None:
    """Chunks of :data:`CHUNK_FRAMES` frames, or of the divisor of ``wiener_win_len``
    closest to it (4 frames at least; the whole window if there is none).

    ``overhang`` is ``n_fft / n_hop − 1``, the frames a chunk's overlap-add reaches into
    the next: a chunk must be at least that long. Returns ``None`` for Wiener windows
    shorter than that (the whole-input graph serves them).
    """
    length = wiener.wiener_win_len if wiener.niter > 0 else None
    if length is None:
        return ChunkPlan(CHUNK_FRAMES, None, wiener.niter, nb_channels == 2)
    divisors = [d for d in range(4, 4 * CHUNK_FRAMES) if length % d == 0]
    frames = min(divisors, key=lambda d: abs(d - CHUNK_FRAMES)) if divisors else length
    if frames < overhang:
        return None
    return ChunkPlan(frames, length // frames, wiener.niter, nb_channels == 2)


def _chunks(x: Tensor, plan: ChunkPlan) -> Tensor:
    """``(N, …)`` → ``(K, c, …)``, zero frames added up to a whole number of chunks (not of
    Wiener windows: :class:`WindowGains` completes the last window; a 56.8-s segment, 2447
    frames, takes 204 chunks instead of the 225 of nine whole windows)."""
    nb_frames = x.shape[0]
    pad = (plan.frames - nb_frames % plan.frames) % plan.frames
    widths = [0, 0] * (x.ndim - 1) + [0, pad]
    padded = functional.pad(x, widths)
    return padded.reshape(-1, plan.frames, *x.shape[1:])


class Head(nn.Module):
    """``mixture (C, T)`` → ``V (K, c, J, C_model, F)``, ``xr, xi (K, c, C, F)``."""

    def __init__(self, separator: Separator, plan: ChunkPlan) -> None:
        super().__init__()
        config = separator.config
        self.model = separator.model
        self.plan = plan
        self.mono_model = config.nb_channels == 1
        self.stft = GraphSTFT(config.n_fft, config.n_hop)
        self.folded = folded_branches(self.model)

    def magnitudes(self, mag: Tensor) -> Tensor:
        """``(N, C_model, F)`` → ``(N, J, C_model, F)`` (UMX: the folded branches of
        :mod:`~unmix.export.folding`, stacked directly)."""
        if self.folded is not None:
            masks = [branch(mag) for branch in self.folded]
            return torch.stack(masks, dim=1) * mag[:, None]
        V: Tensor = self.model(mag.permute(1, 2, 0)[None])[0]  # (C_model, F, N, J)
        return V.permute(2, 3, 0, 1)

    def forward(self, mixture: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """See the class; ``K`` chunks of ``c`` frames."""
        xr, xi = self.stft(mixture, frames_first=True)  # (N, C, F)
        mag = torch.sqrt(xr * xr + xi * xi)
        if self.mono_model:
            mag = mag.mean(dim=1, keepdim=True)
        V = self.magnitudes(mag)
        return _chunks(V, self.plan), _chunks(xr, self.plan), _chunks(xi, self.plan)


def _one_frame_windows(V: Tensor, xr: Tensor, xi: Tensor) -> tuple[Tensor, Pair]:
    """One chunk ``(c, J, C_m, F)``, ``(c, C, F)`` as the filter's ``W = c`` windows of one
    frame each: ``(c, J, C_m, 1, F)``, ``(c, 1, C, 1, F)`` (views, no transpose); sums over
    the chunk's frames are sums over the first axis."""
    return V[:, :, :, None], (xr[:, None, :, None], xi[:, None, :, None])


class _ChunkEM(nn.Module):
    """The EM iterations of one chunk, given the window statistics of each."""

    def __init__(self, wiener: WienerSettings, plan: ChunkPlan) -> None:
        super().__init__()
        self.wiener, self.plan = wiener, plan

    def estimates(self, V: Tensor, mix: Pair, gains: list[Tensor], scale: Tensor) -> Pair:
        """``len(gains)`` EM steps from the initial estimates: ``(c, J', C, 1, F)`` each.

        ``gains[k]`` is ``(S, J', F)`` (:class:`WindowGains`), ``scale`` ``(1,)``.
        """
        settings = self.wiener
        a, carrier = _amplitudes(V, mix, settings)
        if not gains:
            return a * carrier[0], a * carrier[1]
        eps = settings.eps
        if not self.plan.stereo:
            s5 = scale.reshape(1, 1, 1, 1, 1)
            y: Pair = (a * carrier[0] / s5, a * carrier[1] / s5)
            scaled = (mix[0] / s5, mix[1] / s5)
            for gain in gains:
                y = apply_mono(y, gain[0][None, :, None, None], scaled, eps)
            return y[0] * s5, y[1] * s5
        s4 = scale.reshape(1, 1, 1, 1)
        p0, p1, _ = _stats_from_amplitudes(a, carrier, unit=not settings.softmask)
        for k, gain in enumerate(gains):
            parts = gain[:, None, :, None]  # (S, 1, J', 1, F)
            y = apply_gains(p0, p1, (parts[0], parts[1], parts[2], parts[3]), mix, s4, eps)
            if k + 1 < len(gains):
                p0, p1, _ = _stats(y)
        return y

    def sums(self, V: Tensor, mix: Pair, gains: list[Tensor], scale: Tensor) -> Tensor:
        """This chunk's share of the next window sums, ``(S, J', F)``, in input units."""
        if not self.plan.stereo:
            yr, yi = self.estimates(V, mix, gains, scale)
            per_frame = (yr * yr + yi * yi)[:, None, :, 0, 0]  # (c, 1, J', F)
        elif gains:
            y_re, y_im = self.estimates(V, mix, gains, scale)  # (c, J', 2, 1, F)
            (y0r, y1r), (y0i, y1i) = y_re[:, :, :, 0].unbind(2), y_im[:, :, :, 0].unbind(2)
            p0, p1 = y0r * y0r + y0i * y0i, y1r * y1r + y1i * y1i
            cr, ci = y0r * y1r + y0i * y1i, y0i * y1r - y0r * y1i
            per_frame = torch.stack([p0, p1, cr, ci], dim=1)
        else:
            per_frame = self._amplitude_stats(V, mix)
        # Σ over the chunk's frames as one matrix product (onnxruntime's ReduceSum over the
        # leading axis took 4× as long)
        ones = per_frame.new_ones(1, per_frame.shape[0])
        total = torch.matmul(ones, per_frame.reshape(per_frame.shape[0], -1))
        return total.reshape(per_frame.shape[1:])

    def _amplitude_stats(self, V: Tensor, mix: Pair) -> Tensor:
        """``|y_0|², |y_1|², y_0 y_1*`` of the initial estimates ``a · u`` per frame,
        ``(c, 4, J', F)``, without forming them (:func:`~unmix.export.wiener._stats_from_amplitudes`)."""
        a, carrier = _amplitudes(V, mix, self.wiener)
        (u0r, u1r), (u0i, u1i) = carrier[0][:, 0, :, 0].unbind(1), carrier[1][:, 0, :, 0].unbind(1)
        a0, a1 = (a[:, :, 0, 0], a[:, :, 1, 0]) if a.shape[2] == 2 else (a[:, :, 0, 0],) * 2
        p0, p1 = a0 * a0, a1 * a1
        if self.wiener.softmask:  # the carrier is the mixture, not a unit phase
            p0 = p0 * (u0r * u0r + u0i * u0i)[:, None]
            p1 = p1 * (u1r * u1r + u1i * u1i)[:, None]
        prod = a0 * a1
        cr = prod * (u0r * u1r + u0i * u1i)[:, None]
        ci = prod * (u0i * u1r - u0r * u1i)[:, None]
        return torch.stack([p0, p1, cr, ci], dim=1)


class ChunkStats(_ChunkEM):
    """``Scan`` body: chunk → its share of the window sums (and of the peak, first pass)."""

    def forward(self, V: Tensor, xr: Tensor, xi: Tensor, *rest: Tensor) -> tuple[Tensor, ...]:
        """``V (c, J, C_m, F)``, ``xr, xi (c, C, F)``, then ``gains…`` and ``scale (1,)``
        after the first pass → ``sums (S, J', F)`` (+ ``peak (1,)`` in the first pass)."""
        V5, mix = _one_frame_windows(V, xr, xi)
        if not rest:
            peak = torch.sqrt(xr * xr + xi * xi).amax().reshape(1)
            return self.sums(V5, mix, [], peak), peak
        return (self.sums(V5, mix, list(rest[:-1]), rest[-1]),)


class ChunkFilter(_ChunkEM):
    """``Scan`` body: chunk → its stems' samples, ``(J'·C, c · n_hop)``, finished: the
    overlap-add of its frames plus the spill of the chunks before (a ``Scan`` state)."""

    def __init__(self, separator: Separator, plan: ChunkPlan) -> None:
        super().__init__(separator.wiener, plan)
        config = separator.config
        self.istft = GraphISTFT(config.n_fft, config.n_hop)
        self.spill = (config.n_fft // config.n_hop - 1) * config.n_hop

    def forward(
        self, spill: Tensor, V: Tensor, xr: Tensor, xi: Tensor, *rest: Tensor
    ) -> tuple[Tensor, Tensor]:
        """``spill (J'·C, (R − 1) · n_hop)``: what earlier chunks' frames add to this chunk's
        first samples; ``V (c, J, C_m, F)``, ``xr, xi (c, C, F)``, then ``gains…`` and
        ``scale (1,)`` → the next spill and this chunk's samples."""
        V5, mix = _one_frame_windows(V, xr, xi)
        gains, scale = (list(rest[:-1]), rest[-1]) if rest else ([], xr.new_ones(1))
        y_re, y_im = self.estimates(V5, mix, gains, scale)  # (c, J', C, 1, F)
        shape = (y_re.shape[0], -1, y_re.shape[-1])
        re, im = y_re.reshape(shape), y_im.reshape(shape)  # (c, J'·C, F): frames first
        added = self.istft.overlap_added(re, im, frames_first=True)  # (B, (c + R − 1)·hop)
        size, own = self.spill, added.shape[1] - self.spill
        samples = torch.cat([added[:, :size] + spill, added[:, size:own]], dim=1)
        return added[:, own:], samples


class WindowGains(nn.Module):
    """Chunk sums ``(K, S, J', F)`` → window statistics repeated per chunk, ``(K, S, J', F)``.

    Args:
        first: the first pass, which gets the chunks' peaks ``(K,)`` and turns them into
            the window scale; later passes get that scale per chunk.
    """

    def __init__(self, wiener: WienerSettings, plan: ChunkPlan, first: bool) -> None:
        super().__init__()
        self.wiener, self.plan, self.first = wiener, plan, first

    def forward(self, sums: Tensor, peak_or_scale: Tensor) -> tuple[Tensor, Tensor]:
        """``sums (K, S, J', F)``, ``peak_or_scale (K, 1)`` → ``gains (K, S, J', F)``,
        ``scale (K, 1)``."""
        nb_chunks = sums.shape[0]
        per = self.plan.per_window
        if per:  # the last window may be partial: zero chunks add nothing to its sums
            missing = (per - nb_chunks % per) % per
            sums = functional.pad(sums, (0, 0, 0, 0, 0, 0, 0, missing))
            peak_or_scale = functional.pad(peak_or_scale, (0, 0, 0, missing))
        windows = sums.reshape(-1, per, *sums.shape[1:]) if per else sums[None]
        totals = windows.sum(dim=1)  # (W, S, J', F)
        grouped = peak_or_scale.reshape(totals.shape[0], -1)  # (W, chunks per window)
        if self.first:
            scale = torch.clamp(grouped.amax(dim=1) / self.wiener.scale_factor, min=1.0)
        else:
            scale = grouped[:, 0]
        eps = self.wiener.eps
        if self.plan.stereo:
            s = scale.reshape(-1, 1, 1)
            r = window_gains((totals[:, 0], totals[:, 1], totals[:, 2], totals[:, 3]), s, eps)
            gains = torch.stack(r, dim=1)
        else:
            gains = mono_gains(totals, scale.reshape(-1, 1, 1, 1), eps)
        repeat = grouped.shape[1]
        gains = gains[:, None].expand(-1, repeat, -1, -1, -1).reshape(sums.shape)[:nb_chunks]
        return gains, scale[:, None].expand(-1, repeat).reshape(-1, 1)[:nb_chunks]


class Tail(nn.Module):
    """Chunk samples ``(K, B, c · n_hop)`` and the last spill ``(B, (R − 1) · n_hop)`` →
    stems ``(J', C, T)``."""

    def __init__(self, separator: Separator, plan: ChunkPlan, nb_outputs: int) -> None:
        super().__init__()
        config = separator.config
        self.istft = GraphISTFT(config.n_fft, config.n_hop)
        self.hop = config.n_hop
        self.nb_outputs = nb_outputs

    def forward(self, samples: Tensor, spill: Tensor, mixture: Tensor) -> Tensor:
        """``mixture (C, T)`` gives the length ``T`` (and ``C``)."""
        batch = samples.shape[1]
        joined = torch.cat([samples.transpose(0, 1).reshape(batch, -1), spill], dim=1)
        nb_frames = mixture.shape[-1] // self.hop + 1
        audio = self.istft.normalised(joined, nb_frames, mixture)
        return audio.reshape(self.nb_outputs, mixture.shape[0], -1)
