"""Real DFTs of STFT frames as two matrix products (Cooley–Tukey, ``n_fft = N1 · N2``).

onnxruntime's ``STFT`` and ``DFT`` operators are several times slower than PyTorch's FFT on
the CPUs measured, while its matrix product (MLAS) runs near the CPU's peak. A direct DFT
matrix costs ``n_fft`` multiply-adds per bin; splitting the sample index as
``n = N2·n1 + n2`` and the bin as ``k = k1 + N1·k2`` turns one ``n_fft``-point transform
into ``N2`` transforms of size ``N1`` (over ``n1``) followed by ``N1`` transforms of size
``N2`` (over ``n2``): at ``n_fft = 4096`` about 1.3 (forward) and 1.1 (inverse) million
real multiply-adds per frame instead of 16.8 million. Both stages are plain ``MatMul``
nodes:

* forward, stage 1 (batched over ``n2``): the window and the twiddle factors
  ``exp(-2πi k1 n2 / n_fft)`` are folded into the ``N2`` matrices of shape
  ``(N1, 2·N1)`` (all ``k1``, real and imaginary parts);
* forward, stage 2 (from the left): one ``(2·K2, 2·N2)`` real matrix, a complex DFT of
  size ``N2`` restricted to the rows ``k2 < K2 = N2/2 + 1`` that hold bins
  ``k1 + N1·k2 ≤ n_fft / 2``; those bins then lie in natural order (a slice, no gather);
* inverse: ``x[n] = (2/n_fft) Re Σ_k h_k X[k] exp(2πi k n / n_fft)`` over the one-sided
  bins zero-padded to ``K2·N1`` (``h = ½`` at bins 0 and ``n_fft/2``): stage A (from the
  left) an inverse DFT of size ``N2`` over ``k2``, stage B a real stage batched over
  ``n2`` with the twiddles, ``2 / n_fft`` and the synthesis window folded in.

Every transpose keeps the innermost axis: onnxruntime moves whole rows then, while a
``Gather`` over bins or a transpose of the innermost axis costs more than the products.

The framing is part of stage 1: with the signal cut into rows of ``N2`` samples, frame
``t`` is rows ``r·t … r·t + N1 − 1`` (``r = n_hop / N2``), so ``R = n_fft / n_hop`` shifted
slices build all frames at once in the layout stage 1 multiplies. In float32 the results
match ``torch.stft`` / ``torch.fft.irfft`` within about 4e-7 of the spectrum's peak.

Sizes with no factor ``N2 ≥ 8`` of ``gcd(n_fft, n_hop)`` with an even ``N1`` (an odd
``n_fft``, say) return ``None`` from :func:`factorise`; the graph then uses the ONNX
``STFT`` and ``DFT`` operators (:mod:`unmix.export.spectral`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

#: smallest second factor worth the two stages (smaller: the ONNX DFT operators)
MIN_FACTOR = 8


def factorise(n_fft: int, n_hop: int, at_most: int | None = None) -> tuple[int, int] | None:
    """``(N1, N2)`` with ``N1 · N2 = n_fft``, ``N1`` even, ``N2 | n_hop``, the largest ``N2 ≤ at_most``.

    ``at_most`` defaults to ``√n_fft`` (the fewest multiply-adds). Returns ``None`` when
    there is none with ``N2 ≥`` :data:`MIN_FACTOR`.
    """
    common = math.gcd(n_fft, n_hop)
    best = None
    for n2 in range(MIN_FACTOR, min(at_most or n_fft, math.isqrt(n_fft)) + 1):
        if common % n2 == 0 and (n_fft // n2) % 2 == 0:
            best = n2
    return None if best is None else (n_fft // best, best)


def rfft_factors(n_fft: int, n_hop: int) -> tuple[int, int] | None:
    """The factors of the forward transform: ``N2 ≤ √n_fft / 2`` where possible.

    At ``n_fft = 4096`` that is ``128 × 32`` rather than ``64 × 64``: about 25 % more
    multiply-adds in the forward transform (a sixth of all the transforms' work), the same
    error of the transform itself (about 2e-7 of the peak), but with two EM iterations,
    which amplify any rounding, the whole graph's largest difference to torch on the
    example clip was 6.7e-5 instead of 1.06e-4 (the parity limit is 1e-4).
    """
    return factorise(n_fft, n_hop, max(MIN_FACTOR, math.isqrt(n_fft) // 2)) or factorise(
        n_fft, n_hop
    )


def _angle(product: np.ndarray, period: int) -> np.ndarray:
    """``2π (product mod period) / period`` (exact integer reduction first)."""
    return 2 * np.pi * (product % period) / period


def _clean(matrix: np.ndarray) -> Tensor:
    """float32 tensor with the round-off around exact zeros (``sin π``) set to zero."""
    matrix = np.where(np.abs(matrix) < 1e-12, 0.0, matrix)
    return torch.from_numpy(matrix.astype(np.float32))


def forward_bases(n1: int, n2: int, window: np.ndarray) -> tuple[Tensor, Tensor]:
    """The forward matrices: stage 1 ``(N2, N1, 2·N1)``, stage 2 ``(2·K2, 2·N2)``.

    Stage 1 maps the samples ``n = N2·n1 + n2`` of a frame (batch ``n2``, rows ``n1``) to
    the windowed, twiddled partial spectra ``[re k1 …, im k1 …]``; stage 2 (applied from the
    left) maps ``[re n2 …; im n2 …]`` to ``[re k2 …; im k2 …]`` for ``k2 < K2``, the rows
    that hold bins ``k1 + N1·k2 ≤ n_fft / 2``.
    """
    n_fft, rows = n1 * n2, (n1 * n2 // 2) // n1 + 1
    n = np.arange(n2)[:, None] + n2 * np.arange(n1)[None, :]  # (N2, N1)
    phase = _angle(n[:, :, None] * np.arange(n1), n_fft)  # (N2, N1, K1)
    w = window.astype(np.float64)[n][:, :, None]
    stage1 = np.concatenate([w * np.cos(phase), -w * np.sin(phase)], axis=-1)
    theta = _angle(np.arange(rows)[:, None] * np.arange(n2)[None, :], n2)  # (k2, n2)
    cos, sin = np.cos(theta), np.sin(theta)
    stage2 = np.block([[cos, sin], [-sin, cos]])  # (a + ib)(cos − i sin)
    return _clean(stage1), _clean(stage2)


def inverse_bases(n1: int, n2: int, window: np.ndarray) -> tuple[Tensor, Tensor, Tensor]:
    """The inverse constants: bin weights ``(F,)``, stage A ``(2·N2, 2·K2)``, stage B ``(N2, 2·N1, N1)``.

    ``x[n] = (2/n_fft) Re Σ_k h_k X[k] exp(2πi k n / n_fft)`` over the one-sided bins, with
    ``h = ½`` at bins 0 and ``n_fft/2`` (the bin weights) and 1 elsewhere: stage A (from the
    left) is the inverse DFT of size ``N2`` over ``k2`` for every ``k1``, stage B sums over
    ``k1`` with the twiddles, ``2 / n_fft`` and the ``window`` folded in, giving frame
    samples ``n = N2·n1 + n2``.
    """
    n_fft, rows = n1 * n2, (n1 * n2 // 2) // n1 + 1
    weights = np.ones(n_fft // 2 + 1)
    weights[[0, -1]] = 0.5
    theta = _angle(np.arange(n2)[:, None] * np.arange(rows)[None, :], n2)  # (n2, k2)
    cos, sin = np.cos(theta), np.sin(theta)
    stage_a = np.block([[cos, -sin], [sin, cos]])  # (Xr + i Xi) e^{+iθ}
    n = np.arange(n2)[:, None] + n2 * np.arange(n1)[None, :]  # (N2, N1)
    phase = _angle(np.arange(n1)[None, :, None] * n[:, None, :], n_fft)  # (N2, K1, N1)
    scale = 2 * window.astype(np.float64)[n][:, None, :] / n_fft
    stage_b = np.concatenate([scale * np.cos(phase), -scale * np.sin(phase)], axis=1)
    return _clean(weights), _clean(stage_a), _clean(stage_b)


class FactorisedRfft(nn.Module):
    """Framed, windowed one-sided DFT: ``(C, L)`` signal → ``re, im (C, N, F)``.

    ``N = 1 + (L − n_fft) // n_hop`` frames, no padding (the caller pads): what
    ``torch.stft(center=False, window=window)`` returns, as real and imaginary parts.
    Every transpose keeps the innermost axis (onnxruntime moves whole rows then).

    Args:
        n_fft, n_hop: the STFT; :func:`factorise` must accept them.
        window: the analysis window ``(n_fft,)``.
    """

    stage1: Tensor
    stage2: Tensor

    def __init__(self, n_fft: int, n_hop: int, window: Tensor) -> None:
        super().__init__()
        factors = rfft_factors(n_fft, n_hop)
        if factors is None:
            raise ValueError(f"n_fft={n_fft}, n_hop={n_hop} has no two-stage factorisation")
        self.n1, self.n2 = factors
        self.n_fft, self.n_hop = n_fft, n_hop
        stage1, stage2 = forward_bases(self.n1, self.n2, window.double().numpy())
        self.register_buffer("stage1", stage1, persistent=False)
        self.register_buffer("stage2", stage2, persistent=False)

    def forward(self, signal: Tensor, frames_first: bool = False) -> tuple[Tensor, Tensor]:
        """``(C, L)`` with ``L ≥ n_fft`` → ``re, im`` each ``(C, N, n_fft // 2 + 1)``, or
        ``(N, C, n_fft // 2 + 1)`` with ``frames_first`` (the same work, another order)."""
        n1, n2, hop = self.n1, self.n2, self.n_hop
        channels, length = signal.shape
        nb_frames = 1 + (length - self.n_fft) // hop
        pieces = self.n_fft // hop
        rows = signal[:, : (nb_frames + pieces - 1) * hop].reshape(-1, n2)
        # (N2, C, Q, r): the one transpose at signal size, 2-D (onnxruntime's fast path);
        # frames first, (N2, Q, C, r) by moving whole rows of r samples
        blocks = rows.transpose(0, 1).reshape(n2, channels, -1, hop // n2)
        if frames_first:
            blocks = blocks.transpose(1, 2)
        if frames_first:
            frames = torch.cat([blocks[:, a : a + nb_frames] for a in range(pieces)], dim=-1)
        else:
            frames = torch.cat([blocks[:, :, a : a + nb_frames] for a in range(pieces)], dim=-1)
        partial = torch.matmul(frames.reshape(n2, -1, n1), self.stage1)  # (N2, C·N, 2·N1)
        partial = partial.reshape(n2, -1, 2, n1).permute(2, 0, 1, 3).reshape(2 * n2, -1)
        spectrum = torch.matmul(self.stage2, partial)  # (2·K2, C·N·N1)
        spectrum = spectrum.reshape(2, -1, channels * nb_frames, n1).permute(2, 0, 1, 3)
        lead = (nb_frames, channels) if frames_first else (channels, nb_frames)
        spectrum = spectrum.reshape(*lead, 2, -1)[..., : self.n_fft // 2 + 1]
        return spectrum[:, :, 0], spectrum[:, :, 1]


class FactorisedIrfft(nn.Module):
    """Inverse one-sided DFT of frames times a window: ``re, im (B, N, F)`` → frames.

    :meth:`forward` returns frames in sample order ``(B, N, n_fft)``;
    :meth:`transposed` returns them as ``(N2, B, N, N1)`` (sample ``N2·n1 + n2`` at
    ``[n2, …, n1]``), the layout the overlap-add of :class:`~unmix.export.spectral.GraphISTFT`
    consumes without a frame-sized transpose. Imaginary parts of bins 0 and ``n_fft/2``
    are ignored, as by ``torch.fft.irfft``.

    Args:
        n_fft, n_hop: the STFT; :func:`factorise` must accept them.
        window: the synthesis window ``(n_fft,)`` multiplied into every frame.
    """

    weights: Tensor
    stage_a: Tensor
    stage_b: Tensor

    def __init__(self, n_fft: int, n_hop: int, window: Tensor) -> None:
        super().__init__()
        factors = factorise(n_fft, n_hop)
        if factors is None:
            raise ValueError(f"n_fft={n_fft}, n_hop={n_hop} has no two-stage factorisation")
        self.n1, self.n2 = factors
        self.n_fft, self.n_hop = n_fft, n_hop
        for name, value in zip(
            ("weights", "stage_a", "stage_b"),
            inverse_bases(self.n1, self.n2, window.double().numpy()),
            strict=True,
        ):
            self.register_buffer(name, value, persistent=False)

    def transposed(self, re: Tensor, im: Tensor) -> Tensor:
        """``re, im (B, N, F)`` → windowed frames ``(N2, B, N, N1)``."""
        n1, n2 = self.n1, self.n2
        batch, nb_frames, nb_bins = re.shape
        rows = self.stage_a.shape[1] // 2
        zeros = re.new_zeros((batch, nb_frames, rows * n1 - nb_bins))
        both = torch.cat([re * self.weights, zeros, im, zeros], dim=-1)  # (B, N, 2·K2·N1)
        inner = torch.matmul(self.stage_a, both.reshape(-1, 2 * rows, n1))  # (B·N, 2·N2, N1)
        inner = inner.reshape(-1, 2, n2, n1).permute(2, 0, 1, 3).reshape(n2, -1, 2 * n1)
        frames = torch.matmul(inner, self.stage_b)  # (N2, B·N, N1)
        return frames.reshape(n2, batch, nb_frames, n1)

    def forward(self, re: Tensor, im: Tensor) -> Tensor:
        """``re, im (B, N, F)`` → windowed frames ``(B, N, n_fft)``."""
        frames = self.transposed(re, im).permute(1, 2, 3, 0)
        return frames.reshape(re.shape[0], re.shape[1], self.n_fft)
