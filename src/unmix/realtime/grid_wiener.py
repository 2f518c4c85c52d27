"""The offline Wiener filter's statistics, as far as a stream with lookahead knows them.

The offline filter (:func:`unmix.filtering.wiener_sources`) splits the frames into windows
of ``wiener_win_len`` frames from frame 0 and estimates, per window, the spatial covariances
``R_j(f) = Σ_n y_j yᴴ_j / (eps + Σ_n v_j)`` and the peak ``max |x|`` that scales the EM.
Here a chunk's frames are filtered with the sums over the frames of *their* offline window
that the stream knows: those already emitted (carried as running sums, one pair per EM
iteration) plus the chunk and its lookahead. Once the lookahead reaches the window's end
the result is the offline filter's. ``niter 0`` needs no statistics.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..filtering import WienerSettings
from .wiener import CausalWiener, initial_estimates


@dataclass(frozen=True)
class GridState:
    """Sums over the emitted frames of the offline window ``window``.

    ``sums``: per EM iteration ``A (J', F, C, C)`` complex and ``B (J', F)``; ``peak``:
    ``max |x|`` so far (0-d).
    """

    window: int
    sums: tuple[Tensor, ...]
    peak: Tensor


def initial_grid(
    settings: WienerSettings, nb_sources: int, nb_channels: int, nb_bins: int
) -> GridState:
    """Empty sums for window 0."""
    sums: list[Tensor] = []
    for _ in range(settings.niter):
        sums.append(torch.zeros(nb_sources, nb_bins, nb_channels, nb_channels, dtype=torch.cfloat))
        sums.append(torch.zeros(nb_sources, nb_bins))
    return GridState(0, tuple(sums), torch.zeros(()))


def grid_wiener(
    V: Tensor, mix: Tensor, first: int, nb_chunk: int, settings: WienerSettings, state: GridState
) -> tuple[Tensor, GridState]:
    """Filter a chunk's frames with the statistics of their offline windows.

    Args:
        V: model magnitudes ``(J, 1 or C, N, F)`` of the chunk and its lookahead.
        mix: complex mixture ``(C, N, F)``, same frames.
        first: index of the first frame in the stream.
        nb_chunk: frames of the chunk (the first ``nb_chunk``); the chunk never starts
            before the window of ``state``.
        settings: ``niter``, ``softmask``, ``residual``, ``wiener_win_len``, ``scale_factor``,
            ``eps``.
        state: sums of the emitted frames (:func:`initial_grid` or the previous call).

    Returns:
        complex estimates of the chunk ``(J', C, nb_chunk, F)`` and the new state.
    """
    local = CausalWiener(0, settings.softmask, settings.residual, eps=settings.eps)
    y0 = initial_estimates(V, mix, local)  # frame-local: magnitudes (or masks), mixture phase
    if settings.niter == 0:
        return y0[:, :, :nb_chunk], state
    win = settings.wiener_win_len or 1 << 62
    outs = []
    pos = 0
    while pos < nb_chunk:  # one piece per offline window the chunk touches
        window = (first + pos) // win
        if window != state.window:
            state = GridState(
                window, tuple(torch.zeros_like(s) for s in state.sums), torch.zeros(())
            )
        stop = min(nb_chunk, (window + 1) * win - first)  # chunk frames in this window
        known = min(mix.shape[1], (window + 1) * win - first)  # frames known in this window
        y, state = _filter_piece(
            y0[:, :, pos:known], mix[:, pos:known], stop - pos, settings, state
        )
        outs.append(y)
        pos = stop
    return torch.cat(outs, 2), state


def _filter_piece(
    y: Tensor, mix: Tensor, n: int, settings: WienerSettings, state: GridState
) -> tuple[Tensor, GridState]:
    """EM on frames of one window (the first ``n`` are output and added to the sums)."""
    peak = torch.maximum(state.peak, mix.abs().max())
    scale = torch.clamp(peak / settings.scale_factor, min=1.0)
    sums: list[Tensor] = []
    for k in range(settings.niter):
        head_A, head_B = _sums(y[:, :, :n])
        tail_A, tail_B = _sums(y[:, :, n:])
        A, B = state.sums[2 * k] + head_A, state.sums[2 * k + 1] + head_B
        sums += [A, B]
        v = (y.real.square() + y.imag.square()).mean(1)  # (J, N, F)
        y = _em_step(v, A + tail_A, B + tail_B, mix, scale, settings.eps)
    new_peak = torch.maximum(state.peak, mix[:, :n].abs().max())
    return y[:, :, :n], GridState(state.window, tuple(sums), new_peak)


def _sums(y: Tensor) -> tuple[Tensor, Tensor]:
    """``Σ_n y yᴴ (J, F, C, C)`` and ``Σ_n v (J, F)`` of ``y (J, C, N, F)``."""
    power = y.real.square() + y.imag.square()  # (J, C, N, F)
    B = power.mean(1).sum(1)
    if y.shape[1] != 2:
        return torch.einsum("jcnf,jdnf->jfcd", y, y.conj()), B
    p0, p1 = power[:, 0].sum(1), power[:, 1].sum(1)
    c01 = (y[:, 0] * y[:, 1].conj()).sum(1)
    zero = torch.zeros_like(p0)
    A = torch.stack(
        [
            torch.stack([torch.complex(p0, zero), c01], -1),
            torch.stack([c01.conj(), torch.complex(p1, zero)], -1),
        ],
        -2,
    )
    return A, B


def _em_step(v: Tensor, A: Tensor, B: Tensor, mix: Tensor, scale: Tensor, eps: float) -> Tensor:
    """``y_j = v_j R_j Σ_x⁻¹ x`` with ``R_j = A_j / (eps + B_j)`` (all scaled by ``scale``).

    Args:
        v: ``(J, N, F)``; A: ``(J, F, C, C)``; B: ``(J, F)``; mix: ``(C, N, F)``.
    """
    inv_s2 = 1.0 / (scale * scale)
    R = (A * inv_s2) / (eps + B * inv_s2)[..., None, None]  # (J, F, C, C)
    vs = v * inv_s2
    x = mix / scale
    if mix.shape[0] != 2:
        eye = torch.eye(mix.shape[0], dtype=mix.dtype)
        sigma = eps**0.5 * eye + torch.einsum("jnf,jfcd->nfcd", vs.to(mix.dtype), R)
        z = torch.linalg.solve(sigma, x.permute(1, 2, 0))  # (N, F, C)
        return (vs * scale)[:, None] * torch.einsum("jfcd,nfd->jcnf", R, z)
    r00, r11, r01 = R[..., 0, 0].real[:, None], R[..., 1, 1].real[:, None], R[..., 0, 1][:, None]
    s00 = eps**0.5 + (vs * r00).sum(0)  # Σ_x (N, F): two real diagonals, one complex entry
    s11 = eps**0.5 + (vs * r11).sum(0)
    s01 = torch.complex((vs * r01.real).sum(0), (vs * r01.imag).sum(0))
    inv_det = 1.0 / (s00 * s11 - (s01.real.square() + s01.imag.square()))
    z0 = (s11 * x[0] - s01 * x[1]) * inv_det
    z1 = (s00 * x[1] - s01.conj() * x[0]) * inv_det
    w = vs * scale
    return torch.stack([w * (r00 * z0 + r01 * z1), w * (r01.conj() * z0 + r11 * z1)], 1)
