"""Multichannel Wiener filter with expectation-maximisation (EM) refinement.

The maths is that of norbert / Open-Unmix (see docs/wiener.md): initial estimates
from the model magnitudes, then ``niter`` EM iterations that re-estimate a power
spectral density ``v_j(n, f)`` and a time-invariant spatial covariance ``R_j(f)``
per source and filter the mixture with ``G_j = v_j R_j Σ_x⁻¹``.

Unlike the reference, which loops in Python over sources and matrix entries,
everything here is batched over frames, bins and sources, and uses native
complex tensors. Results agree with the reference to float32 rounding.

Two layouts are offered. The public functions :func:`wiener`, :func:`wiener_windowed`,
:func:`initial_estimates` and :func:`expectation_maximization` take the reference's
frames-first layout ``(nb_frames, nb_bins, nb_channels, nb_sources)``. The ``*_sources``
functions work sources-first, ``(nb_sources, nb_channels, nb_frames, nb_bins)``: bins are
contiguous, which is what the inverse FFT wants, so the separator filters and inverts
without transposing the large estimate tensors. Stereo takes a closed-form path
(2×2 Hermitian covariances in real arithmetic); other channel counts use the general one.
"""

from __future__ import annotations

import torch
from torch import Tensor

EPS = 1e-10


def initial_sources(
    spectrograms: Tensor,
    mix: Tensor,
    softmask: bool = False,
    residual: bool = False,
    eps: float = EPS,
) -> Tensor:
    """Complex source estimates before EM, sources-first.

    Args:
        spectrograms: model magnitudes ``(nb_sources, nb_channels or 1, nb_frames, nb_bins)``.
        mix: complex mixture STFT ``(nb_channels, nb_frames, nb_bins)``.
        softmask: ratio masks ``x · V_j / (eps + Σ V)`` instead of magnitude + mixture phase.
        residual: append ``x − Σ_j y_j`` as an extra source.

    Returns:
        complex ``(nb_sources [+ 1], nb_channels, nb_frames, nb_bins)``.
    """
    V = spectrograms.to(mix.real.dtype)
    if softmask:
        y = mix * (V / (eps + V.sum(dim=0, keepdim=True)))
    else:
        mag = mix.abs()
        # unit phasor of the mixture; angle 0 where the mixture bin is exactly zero
        phase = torch.where(mag > 0, mix / mag.clamp_min(torch.finfo(mag.dtype).tiny), 1.0)
        y = V * phase
    if residual:
        y = torch.cat([y, (mix - y.sum(dim=0))[None]], dim=0)
    return y


def _em_step_stereo(y: Tensor, mix: Tensor, eps: float) -> Tensor:
    """One EM iteration for two channels, in closed form.

    Args:
        y: complex ``(nb_sources, 2, nb_frames, nb_bins)``.
        mix: complex ``(2, nb_frames, nb_bins)``.
    """
    y0, y1 = y[:, 0], y[:, 1]  # (J, N, F)
    p0 = y0.real.square() + y0.imag.square()
    p1 = y1.real.square() + y1.imag.square()
    v = 0.5 * (p0 + p1)  # power spectral densities (J, N, F)
    # spatial covariances R_j(f) = Σ_n y yᴴ / (eps + Σ_n v): Hermitian, so 3 entries
    scale = 1.0 / (eps + v.sum(dim=1))  # (J, F)
    r00 = p0.sum(dim=1) * scale
    r11 = p1.sum(dim=1) * scale
    r01 = (y0 * y1.conj()).sum(dim=1) * scale  # complex (J, F)
    # mixture covariance Σ_x(n, f) = √eps·I + Σ_j v_j R_j
    s00 = eps**0.5 + torch.einsum("jnf,jf->nf", v, r00)
    s11 = eps**0.5 + torch.einsum("jnf,jf->nf", v, r11)
    s01 = torch.einsum("jnf,jf->nf", v.to(r01.dtype), r01)
    inv_det = 1.0 / (s00 * s11 - (s01.real.square() + s01.imag.square()))
    x0, x1 = mix[0], mix[1]
    z0 = (s11 * x0 - s01 * x1) * inv_det  # Σ_x⁻¹ x, (N, F)
    z1 = (s00 * x1 - s01.conj() * x0) * inv_det
    out0 = v * (r00[:, None] * z0 + r01[:, None] * z1)
    out1 = v * (r01.conj()[:, None] * z0 + r11[:, None] * z1)
    return torch.stack([out0, out1], dim=1)


def _em_step_general(y: Tensor, mix: Tensor, eps: float) -> Tensor:
    """One EM iteration for any channel count (sources-first layout)."""
    nb_channels = mix.shape[0]
    eye = torch.eye(nb_channels, dtype=mix.dtype, device=mix.device)
    v = (y.real.square() + y.imag.square()).mean(dim=1)  # (J, N, F)
    cov = torch.einsum("jcnf,jdnf->jfcd", y, y.conj())
    R = cov / (eps + v.sum(dim=1))[:, :, None, None]  # (J, F, C, C)
    sigma = (eps**0.5) * eye + torch.einsum("jnf,jfcd->nfcd", v.to(mix.dtype), R)
    z = _solve(sigma, mix.permute(1, 2, 0))  # (N, F, C)
    return v[:, None] * torch.einsum("jfcd,nfd->jcnf", R, z)


def em_sources(y: Tensor, mix: Tensor, niter: int, eps: float = EPS) -> Tensor:
    """Refine sources-first estimates with ``niter`` EM iterations.

    Args:
        y: complex initial estimates ``(nb_sources, nb_channels, nb_frames, nb_bins)``.
        mix: complex mixture ``(nb_channels, nb_frames, nb_bins)``.
        niter: iterations (0 returns ``y`` unchanged).

    Returns:
        complex estimates, same shape as ``y``.
    """
    step = _em_step_stereo if mix.shape[0] == 2 else _em_step_general
    for _ in range(niter):
        y = step(y, mix, eps)
    return y


def wiener_sources(
    spectrograms: Tensor,
    mix: Tensor,
    niter: int = 1,
    softmask: bool = False,
    residual: bool = False,
    scale_factor: float = 10.0,
    eps: float = EPS,
) -> Tensor:
    """Wiener-filter one window of frames, sources-first.

    Args:
        spectrograms: model magnitudes ``(nb_sources, nb_channels or 1, nb_frames, nb_bins)``.
        mix: complex mixture STFT ``(nb_channels, nb_frames, nb_bins)``.
        niter: EM iterations; with ``niter >= 1`` the estimates sum to the mixture.
        softmask: initialise with ratio masks.
        residual: add ``mixture − Σ estimates`` as an extra source.
        scale_factor: the mixture is divided by ``max(1, max|x| / scale_factor)`` during EM.

    Returns:
        complex ``(nb_sources [+ 1], nb_channels, nb_frames, nb_bins)``.
    """
    y = initial_sources(spectrograms, mix, softmask=softmask, residual=residual, eps=eps)
    if niter == 0:
        return y
    scale = torch.clamp(mix.abs().max() / scale_factor, min=1.0)
    return em_sources(y / scale, mix / scale, niter, eps=eps) * scale


def _to_sources_first(x: Tensor) -> Tensor:
    """``(N, F, C, J)`` → ``(J, C, N, F)``."""
    return x.permute(3, 2, 0, 1)


def _to_frames_first(x: Tensor) -> Tensor:
    """``(J, C, N, F)`` → ``(N, F, C, J)``."""
    return x.permute(2, 3, 1, 0)


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
    y = initial_sources(
        _to_sources_first(spectrograms), mix.permute(2, 0, 1), softmask, residual, eps
    )
    return _to_frames_first(y)


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
    if niter == 0:
        return y
    return _to_frames_first(em_sources(_to_sources_first(y), mix.permute(2, 0, 1), niter, eps))


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
    y = wiener_sources(
        _to_sources_first(spectrograms),
        mix.permute(2, 0, 1),
        niter,
        softmask,
        residual,
        scale_factor,
        eps,
    )
    return _to_frames_first(y)


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
