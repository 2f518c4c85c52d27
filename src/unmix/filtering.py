"""Multichannel Wiener filter with expectation-maximisation (EM) refinement.

The maths is that of norbert / Open-Unmix (see docs/architecture.md): initial estimates
from the model magnitudes, then ``niter`` EM iterations that re-estimate a power
spectral density ``v_j(n, f)`` and a time-invariant spatial covariance ``R_j(f)``
per source and filter the mixture with ``G_j = v_j R_j Σ_x⁻¹``.

Unlike the reference, which loops in Python over sources and matrix entries,
everything here is batched over frames, bins and sources, and uses native
complex tensors. Results agree with the reference to float32 rounding.

Two layouts are offered. :func:`wiener` and :func:`wiener_windowed` take the reference's
frames-first layout ``(nb_frames, nb_bins, nb_channels, nb_sources)``. The ``*_sources``
functions work sources-first, ``(nb_sources, nb_channels, nb_frames, nb_bins)``: bins are
contiguous, which is what the inverse FFT wants, so the separator filters and inverts
without transposing the large estimate tensors. Stereo takes a closed-form path
(2×2 Hermitian covariances in real arithmetic); other channel counts use the general one.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from .stereo_em import stereo_em_groups, stereo_statistics, stereo_statistics_from_amplitudes
from .wiener_settings import DEFAULT_WIENER as DEFAULT_WIENER
from .wiener_settings import EPS as EPS
from .wiener_settings import MAX_NITER as MAX_NITER
from .wiener_settings import WienerSettings as WienerSettings
from .wiener_settings import residual_of as residual_of

# the settings and residual_of above are defined without PyTorch (unmix.wiener_settings)


def frame_windows(nb_frames: int, wiener_win_len: int | None) -> Iterator[slice]:
    """The consecutive, non-overlapping windows of frames the filter works on, in order."""
    step = wiener_win_len or max(nb_frames, 1)
    for start in range(0, nb_frames, step):
        yield slice(start, min(start + step, nb_frames))


def _amplitudes(
    spectrograms: Tensor, mix: Tensor, mag: Tensor, softmask: bool, residual: bool, eps: float
) -> tuple[Tensor, Tensor]:
    """Initial estimates as real amplitudes times a complex carrier: ``y_j = a_j · u``.

    Without ``softmask`` the carrier is the mixture phase and ``a_j = V_j``; with it, the
    carrier is the mixture and ``a_j = V_j / (eps + Σ V)``. ``mag`` is ``|mix|``. The residual has the same form
    (``|x| − Σ V`` or ``1 − Σ a``), so the EM statistics follow without complex products.

    Returns:
        ``a (nb_sources [+ 1], nb_channels or 1, nb_frames, nb_bins)`` real and
        ``u (nb_channels, nb_frames, nb_bins)`` complex.
    """
    V = spectrograms.to(mix.real.dtype)
    if softmask:
        a = V / (eps + V.sum(dim=0, keepdim=True))
        carrier = mix
        rest = residual_of(1.0, a)
    else:
        # unit phasor of the mixture; angle 0 where the mixture bin is exactly zero
        carrier = torch.where(mag > 0, mix / mag.clamp_min(torch.finfo(mag.dtype).tiny), 1.0)
        a = V
        rest = residual_of(mag, a)
    if residual:
        a = torch.cat([a.expand(-1, mix.shape[0], -1, -1), rest.expand(1, mix.shape[0], -1, -1)])
    return a, carrier


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
    for _ in range(niter):
        if mix.shape[0] == 2:
            ((_, y),) = stereo_em_groups(*stereo_statistics(y), mix, 1.0, eps)
        else:
            y = _em_step_general(y, mix, eps)
    return y


def wiener_sources(
    spectrograms: Tensor, mix: Tensor, settings: WienerSettings = DEFAULT_WIENER
) -> Tensor:
    """Wiener-filter one window of frames, sources-first.

    Args:
        spectrograms: model magnitudes ``(nb_sources, nb_channels or 1, nb_frames, nb_bins)``.
        mix: complex mixture STFT ``(nb_channels, nb_frames, nb_bins)``.
        settings: ``niter`` (with ``niter >= 1`` the estimates sum to the mixture),
            ``softmask``, ``residual``, ``scale_factor`` and ``eps``; the window length
            is not used here.

    Returns:
        complex ``(nb_sources [+ 1], nb_channels, nb_frames, nb_bins)``.
    """
    ((_, y),) = wiener_groups(spectrograms, mix, settings)
    return y


def wiener_groups(
    spectrograms: Tensor,
    mix: Tensor,
    settings: WienerSettings = DEFAULT_WIENER,
    group: int | None = None,
    magnitude: Tensor | None = None,
) -> Iterator[tuple[int, Tensor]]:
    """:func:`wiener_sources` of one window, yielded in groups of consecutive frames.

    A stereo mixture with ``niter >= 1`` is filtered ``group`` frames at a time after
    the window's statistics (:mod:`unmix.stereo_em`), so that a caller can use each
    group while it is in the cache; other cases come as one group. The estimates are
    those of :func:`wiener_sources` whatever the group size.

    Args:
        spectrograms, mix, settings: as for :func:`wiener_sources`.
        group: frames per group (Default: the whole window in one).
        magnitude: ``|mix|`` ``(nb_channels, nb_frames, nb_bins)`` if the caller has it
            (e.g. :func:`unmix.transforms.magnitude`, the same values), else computed here.

    Yields:
        ``(first frame, complex estimates (nb_sources [+ 1], nb_channels, n, nb_bins))``.
    """
    niter, scale_factor, eps = settings.niter, settings.scale_factor, settings.eps
    mag = mix.abs() if magnitude is None else magnitude
    a, carrier = _amplitudes(spectrograms, mix, mag, settings.softmask, settings.residual, eps)
    if niter == 0:
        yield 0, a * carrier
        return
    scale = torch.clamp(mag.max() / scale_factor, min=1.0)
    if mix.shape[0] != 2:
        yield 0, em_sources(a * carrier / scale, mix / scale, niter, eps=eps) * scale
        return
    # stereo: the first iteration needs only second-order statistics of a · carrier
    stats = stereo_statistics_from_amplitudes(a, carrier, unit=not settings.softmask)
    for _ in range(niter - 1):
        ((_, y),) = stereo_em_groups(*stats, mix, scale, eps)
        stats = stereo_statistics(y)
    yield from stereo_em_groups(*stats, mix, scale, eps, group)


def _to_sources_first(x: Tensor) -> Tensor:
    """``(N, F, C, J)`` → ``(J, C, N, F)``."""
    return x.permute(3, 2, 0, 1)


def _to_frames_first(x: Tensor) -> Tensor:
    """``(J, C, N, F)`` → ``(N, F, C, J)``."""
    return x.permute(2, 3, 1, 0)


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
    settings = WienerSettings(niter, softmask, residual, None, scale_factor, eps)
    return _wiener_frames_first(spectrograms, mix, settings)


def _wiener_frames_first(spectrograms: Tensor, mix: Tensor, settings: WienerSettings) -> Tensor:
    y = wiener_sources(_to_sources_first(spectrograms), mix.permute(2, 0, 1), settings)
    return _to_frames_first(y)


def wiener_windowed(
    spectrograms: Tensor, mix: Tensor, settings: WienerSettings = DEFAULT_WIENER
) -> Tensor:
    """Apply :func:`wiener` on the windows of :func:`frame_windows`, frames-first.

    Args:
        spectrograms: ``(nb_frames, nb_bins, nb_channels or 1, nb_sources)``.
        mix: complex ``(nb_frames, nb_bins, nb_channels)``.
        settings: all Wiener options, ``wiener_win_len`` included.

    Returns:
        complex ``(nb_frames, nb_bins, nb_channels, nb_sources [+ 1])``.
    """
    pieces = [
        _wiener_frames_first(spectrograms[w], mix[w], settings)
        for w in frame_windows(mix.shape[0], settings.wiener_win_len)
    ]
    if not pieces:
        nb_out = spectrograms.shape[-1] + int(settings.residual)
        return mix.new_zeros((*mix.shape, nb_out))
    return torch.cat(pieces, dim=0)
