"""The Wiener filter and its EM in real arithmetic, all windows at once, for export.

The same maths as :func:`unmix.filtering.wiener_sources` (sources-first, closed-form stereo
EM from second-order statistics), but every complex value is a pair of real tensors
``(re, im)`` and the Wiener windows of ``wiener_win_len`` frames are a leading batch axis
instead of a Python loop, so the exported graph has no complex type and no loop over a
dynamic count. The last window is zero-padded: zero frames add nothing to the statistics
or to the peak used for scaling, so every window's result equals the windowed original.

Shapes: ``W`` windows of ``L`` frames, ``J`` sources, ``C`` channels, ``F`` bins; sums over
frames keep their axis (size 1) so that every tensor broadcasts as ``(W, J, C|1, L|1, F)``.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional

from ..filtering import WienerSettings

Pair = tuple[Tensor, Tensor]


def to_windows(x: Tensor, length: int | None) -> Tensor:
    """``(..., N, F)`` → ``(W, ..., L, F)``: consecutive windows of ``length`` frames.

    ``length=None`` gives one window of all frames.
    """
    if length is None:
        return x[None]
    padded = functional.pad(x, (0, 0, 0, (length - x.shape[-2] % length) % length))
    windows = padded.reshape(*x.shape[:-2], -1, length, x.shape[-1])
    lead = windows.ndim - 3
    return windows.permute(lead, *range(lead), lead + 1, lead + 2)


def from_windows(x: Tensor, nb_frames: Tensor | int) -> Tensor:
    """Inverse of :func:`to_windows`: ``(W, ..., L, F)`` → ``(..., N, F)``."""
    lead = x.ndim - 3
    joined = x.permute(*range(1, lead + 1), 0, lead + 1, lead + 2)
    joined = joined.reshape(*joined.shape[:-3], -1, joined.shape[-1])
    return joined[..., :nb_frames, :]


def _amplitudes(V: Tensor, mix: Pair, settings: WienerSettings) -> tuple[Tensor, Pair]:
    """Initial estimates ``a · u``: real amplitudes ``(W, J', C|1, L, F)`` and carrier ``(W, 1, C, L, F)``."""
    xr, xi = mix
    eps = settings.eps
    if settings.softmask:
        a = V / (eps + V.sum(dim=1, keepdim=True))
        carrier = (xr, xi)
        rest = 1.0 - a.sum(dim=1, keepdim=True)
    else:
        mag = torch.sqrt(xr * xr + xi * xi)
        safe = mag.clamp_min(torch.finfo(mag.dtype).tiny)
        nonzero = mag > 0
        carrier = (torch.where(nonzero, xr / safe, 1.0), torch.where(nonzero, xi / safe, 0.0))
        a = V
        rest = mag - V.sum(dim=1, keepdim=True)
    if settings.residual:
        nb_channels = xr.shape[2]
        shape = (-1, -1, nb_channels, -1, -1)
        a = torch.cat([a.expand(shape), rest.expand(shape)], dim=1)
    return a, carrier


def _stats(y: Pair) -> tuple[Tensor, Tensor, Pair]:
    """``|y_0|², |y_1|²`` ``(W, J, L, F)`` and ``Σ_n y_0 y_1*`` ``(W, J, 1, F)``."""
    (y0r, y1r), (y0i, y1i) = y[0].unbind(2), y[1].unbind(2)
    p0 = y0r * y0r + y0i * y0i
    p1 = y1r * y1r + y1i * y1i
    cr = y0r * y1r + y0i * y1i
    ci = y0i * y1r - y0r * y1i
    return p0, p1, (cr.sum(dim=-2, keepdim=True), ci.sum(dim=-2, keepdim=True))


def _stats_from_amplitudes(a: Tensor, carrier: Pair, unit: bool) -> tuple[Tensor, Tensor, Pair]:
    """:func:`_stats` of ``a · carrier`` without forming the product."""
    (u0r, u1r), (u0i, u1i) = carrier[0].unbind(2), carrier[1].unbind(2)
    # a one-channel model's amplitudes serve both channels
    a0, a1 = a.unbind(2) if a.shape[2] == 2 else (a[:, :, 0], a[:, :, 0])
    p0, p1 = a0 * a0, a1 * a1
    if not unit:
        p0 = p0 * (u0r * u0r + u0i * u0i)
        p1 = p1 * (u1r * u1r + u1i * u1i)
    cross_r = u0r * u1r + u0i * u1i
    cross_i = u0i * u1r - u0r * u1i
    prod = a0 * a1
    c01 = ((prod * cross_r).sum(dim=-2, keepdim=True), (prod * cross_i).sum(dim=-2, keepdim=True))
    return p0, p1, c01


def window_gains(
    sums: tuple[Tensor, Tensor, Tensor, Tensor],
    scale: Tensor,
    eps: float,
    v_sum: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Window statistics of one stereo EM step: ``r00, r11, r01r, r01i``.

    Args:
        sums: ``Σ_n |y_0|², Σ_n |y_1|², Σ_n Re y_0 y_1*, Σ_n Im y_0 y_1*`` over a window's
            frames, each ``(W, J, 1, F)``.
        scale: ``(W, 1, 1, 1)``, the window's scale (see :func:`wiener_windows`).
        v_sum: ``Σ_n v`` with ``v = (|y_0|² + |y_1|²) / (2 scale²)`` where the caller has it
            (the same value, rounded as the whole-window filter rounds it).

    Returns:
        the normalised spatial covariances, each ``(W, J, 1, F)``.
    """
    p0, p1, cr, ci = sums
    inv_s2 = 1.0 / (scale * scale)
    if v_sum is None:
        v_sum = (0.5 * inv_s2) * (p0 + p1)
    norm = inv_s2 / (eps + v_sum)
    return p0 * norm, p1 * norm, cr * norm, ci * norm


def _source_sum(x: Tensor) -> Tensor:
    """``x.sum(dim=1, keepdim=True)`` as additions of the sources' slices: onnxruntime's
    ``ReduceSum`` over a middle axis took 2.5× as long on one thread."""
    parts = torch.split(x, 1, dim=1)
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


def apply_gains(
    p0: Tensor,
    p1: Tensor,
    gains: tuple[Tensor, Tensor, Tensor, Tensor],
    mix: Pair,
    scale: Tensor,
    eps: float,
) -> Pair:
    """The frame-by-frame half of one stereo EM step (:func:`window_gains` gives ``gains``).

    ``p0, p1 (W, J, L, F)`` are ``|y_0|², |y_1|²`` of the previous estimate, ``mix`` each
    ``(W, 1, 2, L, F)``, ``scale (W, 1, 1, 1)``; returns ``(re, im)``, each
    ``(W, J, 2, L, F)``. Frames are independent here, so any run of frames can be filtered
    on its own.
    """
    r00, r11, r01r, r01i = gains
    inv_s2 = 1.0 / (scale * scale)
    v = (0.5 * inv_s2) * (p0 + p1)
    s00 = eps**0.5 + _source_sum(v * r00)
    s11 = eps**0.5 + _source_sum(v * r11)
    s01r = _source_sum(v * r01r)
    s01i = _source_sum(v * r01i)
    inv_det = (1.0 / scale) / (s00 * s11 - (s01r * s01r + s01i * s01i))
    (x0r, x1r), (x0i, x1i) = mix[0].unbind(2), mix[1].unbind(2)
    z0r = (s11 * x0r - (s01r * x1r - s01i * x1i)) * inv_det
    z0i = (s11 * x0i - (s01r * x1i + s01i * x1r)) * inv_det
    z1r = (s00 * x1r - (s01r * x0r + s01i * x0i)) * inv_det
    z1i = (s00 * x1i - (s01r * x0i - s01i * x0r)) * inv_det
    v = v * scale
    y0r = v * (r00 * z0r + (r01r * z1r - r01i * z1i))
    y0i = v * (r00 * z0i + (r01r * z1i + r01i * z1r))
    y1r = v * (r11 * z1r + (r01r * z0r + r01i * z0i))
    y1i = v * (r11 * z1i + (r01r * z0i - r01i * z0r))
    return torch.stack([y0r, y1r], dim=2), torch.stack([y0i, y1i], dim=2)


def _em_step_stereo(
    p0: Tensor, p1: Tensor, c01: Pair, mix: Pair, scale: Tensor, eps: float
) -> Pair:
    """One closed-form stereo EM iteration; ``scale (W, 1, 1, 1)``; returns ``(W, J, 2, L, F)``."""
    sums = (p0.sum(dim=-2, keepdim=True), p1.sum(dim=-2, keepdim=True), *c01)
    v_sum = ((0.5 / (scale * scale)) * (p0 + p1)).sum(dim=-2, keepdim=True)
    return apply_gains(p0, p1, window_gains(sums, scale, eps, v_sum), mix, scale, eps)


def mono_gains(power_sum: Tensor, scale: Tensor, eps: float) -> Tensor:
    """Window statistic of one one-channel EM step: ``R (W, J, 1, 1, F)`` from
    ``Σ_n |y|² (W, J, 1, 1, F)`` in input units and ``scale (W, 1, 1, 1, 1)``."""
    v = power_sum / (scale * scale)
    return v / (eps + v)


def apply_mono(y: Pair, gain: Tensor, mix: Pair, eps: float) -> Pair:
    """The frame-by-frame half of one one-channel EM step (scaled units):
    ``y (W, J, 1, L, F)``, ``gain`` from :func:`mono_gains`."""
    yr, yi = y
    v = yr * yr + yi * yi
    sigma = eps**0.5 + (v * gain).sum(dim=1, keepdim=True)
    weight = v * gain / sigma
    return weight * mix[0], weight * mix[1]


def _em_step_mono(y: Pair, mix: Pair, scale: Tensor, eps: float) -> Pair:
    """One EM iteration for one channel (scaled units): ``y (W, J, 1, L, F)``."""
    yr, yi = y
    power = (yr * yr + yi * yi).sum(dim=-2, keepdim=True) * (scale * scale)
    return apply_mono(y, mono_gains(power, scale, eps), mix, eps)


def wiener_windows(V: Tensor, mix: Pair, settings: WienerSettings) -> Pair:
    """Wiener-filter every window at once.

    Args:
        V: model magnitudes ``(W, J, C|1, L, F)``.
        mix: mixture ``(re, im)``, each ``(W, 1, C, L, F)`` with ``C`` 1 or 2.
        settings: ``niter``, ``softmask``, ``residual``, ``scale_factor``, ``eps``.

    Returns:
        estimates ``(re, im)``, each ``(W, J [+ 1], C, L, F)``.
    """
    a, carrier = _amplitudes(V, mix, settings)
    if settings.niter == 0:
        return a * carrier[0], a * carrier[1]
    xr, xi = mix
    peak = torch.sqrt(xr * xr + xi * xi).amax(dim=(1, 2, 3, 4), keepdim=True)[:, 0]
    scale = torch.clamp(peak / settings.scale_factor, min=1.0)  # (W, 1, 1, 1)
    if xr.shape[2] == 1:
        s5 = scale[:, None]
        y: Pair = (a * carrier[0] / s5, a * carrier[1] / s5)
        scaled = (xr / s5, xi / s5)
        for _ in range(settings.niter):
            y = _em_step_mono(y, scaled, s5, settings.eps)
        return y[0] * s5, y[1] * s5
    stats = _stats_from_amplitudes(a, carrier, unit=not settings.softmask)
    for k in range(settings.niter):
        y = _em_step_stereo(*stats, mix, scale, settings.eps)
        if k + 1 < settings.niter:
            stats = _stats(y)
    return y
