"""STFT and ISTFT as ONNX-friendly operations: matrix products, or the ``STFT``/``DFT`` operators.

:class:`GraphSTFT` and :class:`GraphISTFT` compute what :class:`unmix.transforms.STFT` /
``ISTFT`` compute, on real tensors (real and imaginary parts apart), so that no complex
tensor enters the exported graph. Where ``n_fft`` and ``n_hop`` factorise they use the
two-stage matrix DFTs of :mod:`unmix.export.dft` (onnxruntime's matrix product is much
faster than its FFT); otherwise one ONNX ``STFT`` node (:class:`StftFunction`) and one
``DFT`` node (:func:`inverse_real_frames`, also used by the step graph).

Overlap-add is the transposed convolution of the frames with a unit kernel of stride
``n_hop``; with ``n_fft = R · n_hop`` it is written as ``R`` shifted, zero-padded
additions of hop-long pieces (cheap and shape-dynamic in any runtime).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional

from ..errors import UnmixError
from .dft import FactorisedIrfft, FactorisedRfft, factorise, rfft_factors
from .dft3 import ThreeStageIrfft, overlap_add, three_factors


class StftFunction(torch.autograd.Function):
    """``(B, T)`` signal → ``(B, N, F, 2)`` one-sided spectrum (no centring)."""

    @staticmethod
    def forward(ctx: Any, signal: Tensor, window: Tensor, n_fft: int, n_hop: int) -> Tensor:
        spec = torch.stft(
            signal, n_fft, n_hop, window=window, center=False, onesided=True, return_complex=True
        )
        return torch.view_as_real(spec.transpose(-1, -2)).contiguous()

    @staticmethod
    def symbolic(g: Any, signal: Any, window: Any, n_fft: int, n_hop: int) -> Any:
        axes = g.op("Constant", value_t=torch.tensor([-1], dtype=torch.int64))
        step = g.op("Constant", value_t=torch.tensor(n_hop, dtype=torch.int64))
        out = g.op("STFT", g.op("Unsqueeze", signal, axes), step, window, onesided_i=1)
        return _dynamic(out, [None, None, n_fft // 2 + 1, 2])


class _InverseDft(torch.autograd.Function):
    """``(B, N, n, 2)`` full complex spectrum → ``(B, N, n, 2)`` inverse DFT (scaled ``1/n``)."""

    @staticmethod
    def forward(ctx: Any, spec: Tensor, n_fft: int) -> Tensor:
        out = torch.fft.ifft(torch.view_as_complex(spec.contiguous()), dim=-1)
        return torch.view_as_real(out).contiguous()

    @staticmethod
    def symbolic(g: Any, spec: Any, n_fft: int) -> Any:
        return _dynamic(g.op("DFT", spec, axis_i=2, inverse_i=1), [None, None, n_fft, 2])


def inverse_real_frames(re: Tensor, im: Tensor, n_fft: int) -> Tensor:
    """One-sided spectra ``re, im (B, N, F)`` → ``(B, N, n_fft)`` real frames (``irfft``).

    Two real signals share one complex inverse DFT: with ``z = x₀ + i x₁`` the spectrum of
    ``z`` is ``X₀ + i X₁`` on bins ``0 … F-1`` and ``conj(X₀) + i conj(X₁)`` mirrored above,
    and the real and imaginary parts of its inverse are ``x₀`` and ``x₁``. This halves the
    runtime's DFT work (onnxruntime's one-sided inverse costs as much as a complex one).
    """
    batch, _, nb_bins = re.shape
    if batch % 2:
        re, im = (
            torch.cat([re, torch.zeros_like(re[:1])]),
            torch.cat([im, torch.zeros_like(im[:1])]),
        )
    x0r, x1r = re.reshape(-1, 2, *re.shape[1:]).unbind(1)
    x0i, x1i = im.reshape(-1, 2, *im.shape[1:]).unbind(1)
    low = torch.stack([x0r - x1i, x0i + x1r], dim=-1)
    inner = slice(1, n_fft - nb_bins + 1)  # bins mirrored above n_fft / 2 (odd n_fft too)
    high = torch.stack([x0r[..., inner] + x1i[..., inner], x1r[..., inner] - x0i[..., inner]], -1)
    high = torch.flip(high, [2])
    full = torch.cat([low, high], dim=2)  # (B/2, N, n_fft, 2)
    frames: Tensor = _InverseDft.apply(full, n_fft)  # type: ignore[no-untyped-call]
    frames = frames.permute(0, 3, 1, 2).reshape(-1, frames.shape[1], n_fft)
    return frames[:batch]


def _dynamic(value: Any, sizes: list[int | None]) -> Any:
    """Declare a float tensor of ``sizes`` (``None``: dynamic) so that no size is frozen."""
    value.setType(value.type().with_dtype(torch.float32).with_sizes(sizes))
    return value


def _check_geometry(n_fft: int, n_hop: int) -> None:
    if n_fft % n_hop or 2 * n_hop > n_fft:
        raise UnmixError(
            f"cannot export the STFT with n_fft={n_fft}, n_hop={n_hop}: the graph's overlap-add "
            "needs n_fft to be a multiple of n_hop and n_hop <= n_fft / 2 (every released model "
            "has n_fft = 4 n_hop or 2 n_hop)"
        )


class GraphSTFT(nn.Module):
    """Centred STFT (reflect padding, periodic Hann), real in, real and imaginary parts out.

    Two matrix products (:class:`~unmix.export.dft.FactorisedRfft`) where ``n_fft`` and
    ``n_hop`` factorise, the ONNX ``STFT`` operator otherwise.

    Args:
        n_fft: FFT size and window length.
        n_hop: hop size.
    """

    window: Tensor

    def __init__(self, n_fft: int, n_hop: int) -> None:
        super().__init__()
        _check_geometry(n_fft, n_hop)
        self.n_fft, self.n_hop = n_fft, n_hop
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        rfft = FactorisedRfft(n_fft, n_hop, self.window) if rfft_factors(n_fft, n_hop) else None
        self.rfft = rfft

    def forward(self, audio: Tensor, frames_first: bool = False) -> tuple[Tensor, Tensor]:
        """``(C, T)`` audio (``T > n_fft // 2``) → ``re, im (C, N, F)``, ``N = 1 + T // n_hop``
        (``(N, C, F)`` with ``frames_first``)."""
        pad = self.n_fft // 2
        padded = functional.pad(audio[:, None], (pad, pad), mode="reflect")[:, 0]
        if frames_first and self.rfft is not None:
            re, im = self.rfft(padded, frames_first=True)
            return re, im
        re, im = frame_spectra(padded, self.window, self.n_fft, self.n_hop, self.rfft)
        return (re.transpose(0, 1), im.transpose(0, 1)) if frames_first else (re, im)


def frame_spectra(
    signal: Tensor, window: Tensor, n_fft: int, n_hop: int, rfft: FactorisedRfft | None
) -> tuple[Tensor, Tensor]:
    """``(C, L)`` → ``re, im (C, N, F)`` of the uncentred STFT, by ``rfft`` if given."""
    if rfft is not None:
        re, im = rfft(signal)
        return re, im
    spec: Tensor = StftFunction.apply(signal, window, n_fft, n_hop)  # type: ignore[no-untyped-call]
    re, im = spec.unbind(-1)
    return re, im


class GraphISTFT(nn.Module):
    """Inverse of :class:`GraphSTFT`: inverse DFT, window, overlap-add, divide by Σ window².

    Where ``n_fft`` splits into three factors (:func:`~unmix.export.dft3.three_factors`), the
    three-stage matrix DFT with its own overlap-add (:mod:`unmix.export.dft3`); else, where
    ``n_fft`` and ``n_hop`` factorise, the inverse DFT and the window are two matrix
    products (:class:`~unmix.export.dft.FactorisedIrfft`) whose output layout ``(N2, B,
    N, N1)`` is overlap-added as it is (hop ``n_hop / N2`` along ``N1``) and transposed
    once, at signal size; otherwise the ONNX ``DFT`` operator.
    """

    window: Tensor

    def __init__(self, n_fft: int, n_hop: int) -> None:
        super().__init__()
        _check_geometry(n_fft, n_hop)
        self.n_fft, self.n_hop = n_fft, n_hop
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.irfft = FactorisedIrfft(n_fft, n_hop, self.window) if factorise(n_fft, n_hop) else None
        three = three_factors(n_fft, n_hop)
        self.irfft3 = ThreeStageIrfft(n_fft, n_hop, self.window) if three else None

    def overlap_added(self, re: Tensor, im: Tensor, frames_first: bool = False) -> Tensor:
        """Spectrum ``re, im (B, N, F)`` (``(N, B, F)`` with ``frames_first``) → windowed
        frames overlap-added, ``(B, (N + R − 1) · n_hop)`` with ``R = n_fft / n_hop``, not yet
        divided by Σ window² (frames are independent, so runs of frames can be added up
        separately)."""
        if self.irfft3 is not None:
            added: Tensor = self.irfft3(re, im, frames_first)
            return added
        if frames_first:
            re, im = re.transpose(0, 1), im.transpose(0, 1)
        batch, nb_frames = re.shape[0], re.shape[1]
        if self.irfft is None:
            frames = inverse_real_frames(re, im, self.n_fft)
            return overlap_add(frames * self.window, self.n_hop)
        n2 = self.irfft.n2
        frames = self.irfft.transposed(re, im)  # (N2, B, N, N1)
        out = overlap_add(frames.reshape(n2 * batch, nb_frames, -1), self.n_hop // n2)
        return out.reshape(n2, batch, -1).permute(1, 2, 0).reshape(batch, -1)

    def normalised(self, out: Tensor, nb_frames: int, like: Tensor) -> Tensor:
        """Overlap-added ``out (B, ≥ (N + R − 1) · n_hop)`` of ``nb_frames`` frames → ``(B, T)``
        audio: divided by Σ window² and cut to the length ``T`` of ``like (..., T)``."""
        squared = (self.window**2).expand(1, nb_frames, self.n_fft)
        envelope = overlap_add(squared, self.n_hop)
        start = self.n_fft // 2
        stop = start + like.shape[-1]
        return out[:, start:stop] / envelope[:, start:stop]

    def forward(self, re: Tensor, im: Tensor, like: Tensor) -> Tensor:
        """Spectrum ``re, im (B, N, F)`` → ``(B, T)`` audio, ``T`` the length of ``like (..., T)``."""
        return self.normalised(self.overlap_added(re, im), re.shape[1], like)
