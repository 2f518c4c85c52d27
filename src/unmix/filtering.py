"""Multichannel Wiener filter with expectation-maximisation (EM) refinement.

The maths is that of norbert / Open-Unmix (see docs/wiener.md): initial estimates
from the model magnitudes, then ``niter`` EM iterations that re-estimate a power
spectral density ``v_j(n, f)`` and a time-invariant spatial covariance ``R_j(f)``
per source and filter the mixture with ``G_j = v_j R_j Σ_x⁻¹``.

Unlike the reference, which loops in Python over sources and matrix entries,
everything here is batched over frames, bins and sources, and uses native
complex tensors. Results agree with the reference to float32 rounding.
"""

from __future__ import annotations

import torch
from torch import Tensor

EPS = 1e-10


def initial_estimates(
    spectrograms: Tensor,
    mix: Tensor,
    softmask: bool = False,
    residual: bool = False,
    eps: float = EPS,
) -> Tensor:
    """Complex source estimates before EM.

    Args:
        spectrograms: model magnitudes ``(nb_frames, nb_bins, nb_channels or 1, nb_sources)``.
        mix: complex mixture STFT ``(nb_frames, nb_bins, nb_channels)``.
        softmask: ratio masks ``x · V_j / (eps + Σ V)`` instead of magnitude + mixture phase.
        residual: append ``x − Σ_j y_j`` as an extra source.

    Returns:
        complex ``(nb_frames, nb_bins, nb_channels, nb_sources [+ 1])``.
    """
    V = spectrograms.to(mix.real.dtype)
    if softmask:
        y = mix[..., None] * (V / (eps + V.sum(dim=-1, keepdim=True)))
    else:
        mag = mix.abs()
        # unit phasor of the mixture; angle 0 where the mixture bin is exactly zero
        phase = torch.where(mag > 0, mix / mag.clamp_min(torch.finfo(mag.dtype).tiny), 1.0)
        y = V * phase[..., None]
    if residual:
        y = torch.cat([y, (mix - y.sum(dim=-1))[..., None]], dim=-1)
    return y


def _solve(cov: Tensor, x: Tensor) -> Tensor:
    """``cov⁻¹ x`` for ``cov (..., C, C)`` and ``x (..., C)``, closed form for C ≤ 2."""
    nb_channels = cov.shape[-1]
    if nb_channels == 1:
        out: Tensor = x / cov[..., 0]
        return out
    if nb_channels == 2:
        a, b = cov[..., 0, 0], cov[..., 0, 1]
        c, d = cov[..., 1, 0], cov[..., 1, 1]
        inv_det = 1.0 / (a * d - b * c)
        x0, x1 = x[..., 0], x[..., 1]
        return torch.stack([(d * x0 - b * x1) * inv_det, (a * x1 - c * x0) * inv_det], dim=-1)
    solved: Tensor = torch.linalg.solve(cov, x.unsqueeze(-1))
    return solved.squeeze(-1)


def expectation_maximization(y: Tensor, mix: Tensor, niter: int, eps: float = EPS) -> Tensor:
    """Refine source estimates with ``niter`` EM iterations.

    Args:
        y: complex initial estimates ``(nb_frames, nb_bins, nb_channels, nb_sources)``.
        mix: complex mixture ``(nb_frames, nb_bins, nb_channels)``.
        niter: iterations (0 returns ``y`` unchanged).

    Returns:
        complex estimates, same shape as ``y``.
    """
    nb_channels = mix.shape[-1]
    eye = torch.eye(nb_channels, dtype=mix.dtype, device=mix.device)
    for _ in range(niter):
        # power spectral densities (N, F, J)
        v = (y.real.square() + y.imag.square()).mean(dim=-2)
        # spatial covariances R (F, C, C, J), one per bin for the whole window
        cov = torch.einsum("nfcj,nfdj->fcdj", y, y.conj())
        R = cov / (eps + v.sum(dim=0))[:, None, None, :]
        # mixture covariance (N, F, C, C)
        sigma = (eps**0.5) * eye + torch.einsum("nfj,fcdj->nfcd", v.to(mix.dtype), R)
        z = _solve(sigma, mix)  # Σ_x⁻¹ x, (N, F, C)
        y = v[:, :, None, :] * torch.einsum("fcdj,nfd->nfcj", R, z)
    return y


def wiener(
    spectrograms: Tensor,
    mix: Tensor,
    niter: int = 1,
    softmask: bool = False,
    residual: bool = False,
    scale_factor: float = 10.0,
    eps: float = EPS,
) -> Tensor:
    """Wiener-filter one window of frames.

    Args:
        spectrograms: model magnitudes ``(nb_frames, nb_bins, nb_channels or 1, nb_sources)``.
        mix: complex mixture STFT ``(nb_frames, nb_bins, nb_channels)``.
        niter: EM iterations; with ``niter >= 1`` the estimates sum to the mixture.
        softmask: initialise with ratio masks.
        residual: add ``mixture − Σ estimates`` as an extra source.
        scale_factor: the mixture is divided by ``max(1, max|x| / scale_factor)`` during EM.

    Returns:
        complex estimates ``(nb_frames, nb_bins, nb_channels, nb_sources [+ 1])``.
    """
    y = initial_estimates(spectrograms, mix, softmask=softmask, residual=residual, eps=eps)
    if niter == 0:
        return y
    scale = torch.clamp(mix.abs().max() / scale_factor, min=1.0)
    return expectation_maximization(y / scale, mix / scale, niter, eps=eps) * scale


def wiener_windowed(
    spectrograms: Tensor,
    mix: Tensor,
    niter: int = 1,
    softmask: bool = False,
    residual: bool = False,
    wiener_win_len: int | None = 300,
) -> Tensor:
    """Apply :func:`wiener` on consecutive non-overlapping windows of frames.

    Args:
        spectrograms: ``(nb_frames, nb_bins, nb_channels or 1, nb_sources)``.
        mix: complex ``(nb_frames, nb_bins, nb_channels)``.
        wiener_win_len: frames per window; ``None`` or 0 filters all frames at once.

    Returns:
        complex ``(nb_frames, nb_bins, nb_channels, nb_sources [+ 1])``.
    """
    nb_frames = mix.shape[0]
    step = wiener_win_len or nb_frames
    pieces = [
        wiener(spectrograms[pos : pos + step], mix[pos : pos + step], niter, softmask, residual)
        for pos in range(0, nb_frames, max(step, 1))
    ]
    if not pieces:
        nb_out = spectrograms.shape[-1] + int(residual)
        return mix.new_zeros((*mix.shape, nb_out))
    return torch.cat(pieces, dim=0)
