"""The stereo EM step of the Wiener filter in closed form, frame group by frame group.

With two channels every covariance of :mod:`unmix.filtering` is a 2×2 Hermitian matrix:
three entries, handled here in real arithmetic without forming complex products. An EM
step has two parts. The *statistics* of a window (channel powers ``p0, p1`` per frame and
their sums over frames, the cross term ``Σ_n y_0 y_1*``) give each source's spatial
covariance ``R_j(f)``; they need all the window's frames. The *filter* then builds each
frame's estimates from that frame alone: ``y_j = v_j R_j Σ_x⁻¹ x``.

:func:`stereo_em_groups` therefore yields the estimates in groups of a few frames: the
separator inverts each group while it is still in the cache, instead of writing the whole
window's complex estimates (sources × channels × frames × bins) to memory and reading them
back for the inverse FFT. The values do not depend on the group size: the statistics are
computed over the whole window as before, and the filter is elementwise per frame.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

#: frames per group of :func:`stereo_em_groups` in the separator on a CPU: the group's
#: estimates and their inverse FFT (4 sources, stereo, 4096-point frames: about 2 MiB)
#: stay in the cache of one core (a GPU takes whole windows)
GROUP_FRAMES = 16


def stereo_statistics(y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``|y_0|², |y_1|²`` ``(J, N, F)`` and ``Σ_n y_0 y_1*`` ``(J, F)`` of ``y (J, 2, N, F)``."""
    y0, y1 = y[:, 0], y[:, 1]
    p0 = y0.real.square() + y0.imag.square()
    p1 = y1.real.square() + y1.imag.square()
    return p0, p1, (y0 * y1.conj()).sum(dim=1)


def stereo_statistics_from_amplitudes(
    a: Tensor, carrier: Tensor, unit: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`stereo_statistics` of ``a · carrier`` without forming the product.

    Args:
        a: real amplitudes ``(J, 1 or 2, N, F)``.
        carrier: complex ``(2, N, F)``.
        unit: ``|carrier| = 1`` (a unit phasor): the powers are ``a²``.
    """
    a0, a1 = a[:, 0], a[:, -1]  # a one-channel model's amplitudes serve both channels
    p0, p1 = a0.square(), a1.square()
    if not unit:
        p0 = p0 * (carrier[0].real.square() + carrier[0].imag.square())
        p1 = p1 * (carrier[1].real.square() + carrier[1].imag.square())
    cross = carrier[0] * carrier[1].conj()  # (N, F)
    prod = a0 * a1
    # contiguous real and imaginary parts: the products over sources then run vectorised
    c01 = torch.complex(
        (prod * cross.real.contiguous()).sum(dim=1), (prod * cross.imag.contiguous()).sum(dim=1)
    )
    return p0, p1, c01


def stereo_em_groups(
    p0: Tensor,
    p1: Tensor,
    c01: Tensor,
    mix: Tensor,
    scale: Tensor | float,
    eps: float,
    group: int | None = None,
) -> Iterator[tuple[int, Tensor]]:
    """One EM iteration for two channels, yielded in groups of frames.

    Args:
        p0, p1: channel powers ``|y_c|²`` of the current estimates ``(J, N, F)``.
        c01: ``Σ_n y_0 y_1*`` ``(J, F)``.
        mix: complex ``(2, N, F)``.
        scale: estimates and mixture are divided by it during the step (as the reference
            does); the result is in the original units.
        group: frames per group (Default: all ``N`` in one).

    Yields:
        ``(first frame, complex estimates (J, 2, n, F))`` for consecutive groups of
        ``n <= group`` frames; together, the estimates of all ``N`` frames.
    """
    inv_s2 = 1.0 / (scale * scale)
    v = (0.5 * inv_s2) * (p0 + p1)  # power spectral densities (J, N, F)
    # spatial covariances R_j(f) = Σ_n y yᴴ / (eps + Σ_n v); Hermitian, so three entries
    norm = inv_s2 / (eps + v.sum(dim=1))  # (J, F)
    r00 = (p0.sum(dim=1) * norm)[:, None]
    r11 = (p1.sum(dim=1) * norm)[:, None]
    r01 = (c01 * norm)[:, None]
    R = (r00, r11, r01, r01.conj().resolve_conj(), r01.real.contiguous(), r01.imag.contiguous())
    nb_frames = mix.shape[1]
    step = group or max(nb_frames, 1)
    for start in range(0, max(nb_frames, 1), step):  # an empty window: one empty group
        frames = slice(start, start + step)
        yield start, _filter(v[:, frames], R, mix[:, frames], scale, eps)


def _filter(
    v: Tensor, R: tuple[Tensor, ...], mix: Tensor, scale: Tensor | float, eps: float
) -> Tensor:
    """``y_j = v_j R_j Σ_x⁻¹ x`` for some frames: ``v (J, n, F)``, ``R`` = ``r00, r11, r01``
    then ``r01*`` and the real and imaginary parts of ``r01``, each ``(J, 1, F)``, complex
    ``mix (2, n, F)`` → complex ``(J, 2, n, F)``."""
    r00, r11, r01, r10, r01_re, r01_im = R
    # mixture covariance Σ_x(n, f) = √eps·I + Σ_j v_j R_j
    s00 = eps**0.5 + (v * r00).sum(dim=0)
    s11 = eps**0.5 + (v * r11).sum(dim=0)
    s01 = torch.complex((v * r01_re).sum(dim=0), (v * r01_im).sum(dim=0))
    # Σ_x⁻¹ (x / scale)
    inv_det = (1.0 / scale) / (s00 * s11 - (s01.real.square() + s01.imag.square()))
    x0, x1 = mix[0], mix[1]
    z0 = (s11 * x0 - s01 * x1) * inv_det
    z1 = (s00 * x1 - s01.conj() * x0) * inv_det
    v = v * scale
    out = torch.empty((v.shape[0], 2, *v.shape[1:]), dtype=mix.dtype, device=mix.device)
    # y_c = v · (R_c0 z0 + R_c1 z1), built in place in the output (no temporaries)
    for c, (diag, z_diag, cross, z_cross) in enumerate([(r00, z0, r01, z1), (r11, z1, r10, z0)]):
        y = out[:, c]
        torch.mul(cross, z_cross, out=y)
        y.addcmul_(diag, z_diag)
        y.mul_(v)
    return out
