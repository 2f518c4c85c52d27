"""BSSEval v4 (images variant, time-invariant distortion filters), equal to museval 0.4.1.

For every estimate ``s_hat_j`` and every window, museval splits the error into a spatial,
an interference and an artifacts part by projecting the estimate onto delayed copies
(``0 … L-1`` samples, ``L = 512``) of the references:

* ``C``: least-squares filters from **all** references to ``s_hat_j``;
* ``C_j``: least-squares filters from reference ``j`` alone.

Both are estimated once on the whole signal (v4) from the Gram matrix ``G`` of the delayed
reference channels, ``(G + eps I) C = D``. In each window the references, cut to the
window, are filtered with ``C_j`` and ``C`` (``P_j`` and ``P``, ``L - 1`` samples longer
than the window) and::

    SDR = 10 log10(|s|^2 / |s_hat - s|^2)
    ISR = 10 log10(|s|^2 / |P_j - s|^2)
    SIR = 10 log10(|P_j|^2 / |P - P_j|^2)
    SAR = 10 log10(|P|^2 / |s_hat - P|^2)

with sums over the samples and channels of the (padded) window. This module computes the
same quantities faster: correlations by blocks of FFTs (:mod:`.correlation`), one LU
factorisation shared by all estimates, and window energies in the frequency domain
(Parseval), so no filtered signal is ever formed in the time domain.

References:
    E. Vincent, R. Gribonval, C. Févotte, "Performance measurement in blind audio source
    separation", IEEE TASLP 14(4), 2006.
    A. Liutkus, F.-R. Stöter, N. Ito, "The 2018 Signal Separation Evaluation Campaign",
    LVA/ICA 2018.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import ArrayLike

from .correlation import lagged_xcorr
from .framing import check_framing, window_bounds
from .sdr import safe_db, stack_windows, window_chunks, window_sums
from .validation import MetricsInputError, check_not_silent, check_pair

#: museval's diagonal loading of the Gram matrix (float64 machine epsilon, absolute)
EPS = float(np.finfo(np.float64).eps)
#: windows transformed together in the scoring stage (bounds memory)
WINDOWS_PER_CHUNK = 8


class BSSEvalScores(NamedTuple):
    """Framewise BSSEval v4 scores in dB, each ``(nb_sources, nb_windows)`` float64.

    Unpacks in museval's order: ``sdr, isr, sir, sar = bss_eval_v4(...)``. NaN marks
    silent windows; ``+inf`` a zero error energy (museval's convention).
    """

    sdr: np.ndarray
    isr: np.ndarray
    sir: np.ndarray
    sar: np.ndarray


@dataclass(frozen=True)
class DistortionFilters:
    """Least-squares projection filters estimated on the whole signal.

    Attributes:
        all_refs: ``(nb_sources * nb_channels * L, nb_sources * nb_channels)``: row
            ``(j, c_in, lag)``, column ``(estimate, c_out)`` — the filters ``C`` from every
            reference channel to every estimate channel.
        own_ref: ``(nb_sources, nb_channels * L, nb_channels)``: for estimate ``j``, the
            filters ``C_j`` from reference ``j`` alone, rows ``(c_in, lag)``.
    """

    all_refs: np.ndarray
    own_ref: np.ndarray

    @property
    def nb_sources(self) -> int:
        return int(self.own_ref.shape[0])

    @property
    def nb_channels(self) -> int:
        return int(self.own_ref.shape[2])

    @property
    def length(self) -> int:
        return int(self.own_ref.shape[1] // self.nb_channels)


def gram_matrix(ref_corr: np.ndarray, filters_len: int) -> np.ndarray:
    """Gram matrix of the delayed reference channels.

    Args:
        ref_corr: ``(P, P, 2L - 1)`` correlations ``R[a, b, L-1+k] = sum_n x_a[n] x_b[n+k]``.
        filters_len: ``L``.

    Returns:
        ``(P L, P L)``, exactly symmetric; entry ``((a, p), (b, q))`` is the inner product
        of channel ``a`` delayed by ``p`` with channel ``b`` delayed by ``q``, i.e.
        ``R[a, b, p - q]``: a Toeplitz block per channel pair.
    """
    nb = ref_corr.shape[0]
    size = filters_len
    gram = np.empty((nb * size, nb * size))
    for a in range(nb):
        for b in range(a, nb):
            lags = ref_corr[a, b]
            if a == b:  # an autocorrelation is even; average away the rounding asymmetry
                lags = (lags + lags[::-1]) / 2
            # block[p, q] = lags[L-1 + p - q]: rows are reversed sliding windows
            block = sliding_window_view(lags[::-1], size)[::-1]
            gram[a * size : (a + 1) * size, b * size : (b + 1) * size] = block
            gram[b * size : (b + 1) * size, a * size : (a + 1) * size] = block.T
    return gram


def cross_matrix(est_corr: np.ndarray, filters_len: int) -> np.ndarray:
    """Inner products of the delayed reference channels with the estimate channels.

    Args:
        est_corr: ``(E, P, 2L - 1)`` correlations ``R[c, a, L-1+k] = sum_n e_c[n] x_a[n+k]``.
        filters_len: ``L``.

    Returns:
        ``(P L, E)``; entry ``((a, l), c) = sum_n x_a[n - l] e_c[n]``.
    """
    nb_est, nb_ref = est_corr.shape[:2]
    delayed = est_corr[:, :, filters_len - 1 :: -1]  # lag -l for l = 0 … L-1
    return np.ascontiguousarray(delayed.transpose(1, 2, 0).reshape(nb_ref * filters_len, nb_est))


def _solve(matrix: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """museval's solve: LU with partial pivoting, least squares if exactly singular."""
    try:
        return np.asarray(np.linalg.solve(matrix, rhs))
    except np.linalg.LinAlgError:
        return np.asarray(np.linalg.lstsq(matrix, rhs, rcond=None)[0])


def distortion_filters(
    references: np.ndarray,
    estimates: np.ndarray,
    filters_len: int = 512,
    regularization: float = 0.0,
) -> DistortionFilters:
    """Estimate museval's v4 projection filters on the whole signal.

    Args:
        references, estimates: ``(nb_sources, nb_samples, nb_channels)``.
        filters_len: taps ``L`` (Default: 512).
        regularization: extra diagonal loading of the Gram matrix, relative to each
            reference channel's energy (0: museval's ``eps`` only). See
            :func:`bss_eval_v4`.

    Returns:
        the filters ``C`` (all references) and ``C_j`` (own reference) of every estimate.
    """
    nb_src, _, nb_ch = references.shape
    rows = nb_src * nb_ch
    corr = lagged_xcorr([references, estimates], [references], filters_len - 1)
    gram = gram_matrix(corr[:rows], filters_len)
    cross = cross_matrix(corr[rows:], filters_len)
    del corr
    diag = np.diag_indices_from(gram)
    gram[diag] += EPS + regularization * gram[diag]
    all_refs = _solve(gram, cross)
    block = nb_ch * filters_len
    own = np.empty((nb_src, block, nb_ch))
    for j in range(nb_src):
        rows_j = slice(j * block, (j + 1) * block)
        own[j] = _solve(gram[rows_j, rows_j], cross[rows_j, j * nb_ch : (j + 1) * nb_ch])
    return DistortionFilters(all_refs, own)


def _fast_length(n: int) -> int:
    """Smallest ``2^a 3^b 5^c >= n`` (fast FFT sizes)."""
    best = 1 << int(np.ceil(np.log2(n)))
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            p = p35
            while p < n:
                p *= 2
            best = min(best, p)
            p35 *= 3
        p5 *= 5
    return best


def filter_spectra(filters: DistortionFilters, fft_size: int) -> np.ndarray:
    """Frequency responses of the projections, from reference channels to estimate channels.

    Rows ``(estimate, c_out)``: first the own-reference projections ``P_j`` (block
    diagonal), then the projections ``P`` on all references. Columns: reference channels
    ``(j, c_in)``.

    Returns:
        ``(fft_size // 2 + 1, 2 nb_sources nb_channels, nb_sources nb_channels)`` complex.
    """
    nb_src, nb_ch, taps = filters.nb_sources, filters.nb_channels, filters.length
    rows = nb_src * nb_ch
    all_f = np.fft.rfft(filters.all_refs.reshape(rows, taps, rows), n=fft_size, axis=1)
    own_f = np.fft.rfft(filters.own_ref.reshape(nb_src, nb_ch, taps, nb_ch), n=fft_size, axis=2)
    out = np.zeros((all_f.shape[1], 2 * rows, rows), dtype=all_f.dtype)
    for j in range(nb_src):
        sl = slice(j * nb_ch, (j + 1) * nb_ch)
        out[:, sl, sl] = own_f[j].transpose(1, 2, 0)
    out[:, rows:] = all_f.transpose(1, 2, 0)
    return out


@dataclass(frozen=True)
class _Projector:
    """Filter responses at one FFT size, and the weights turning ``|rfft|^2`` sums into
    time-domain energies (Parseval)."""

    spectra: np.ndarray
    fft_size: int

    @property
    def weights(self) -> np.ndarray:
        weights = np.full(self.fft_size // 2 + 1, 2.0 / self.fft_size)
        weights[0] = 1.0 / self.fft_size
        if self.fft_size % 2 == 0:
            weights[-1] = 1.0 / self.fft_size
        return weights


def _projection_energies(
    projector: _Projector, references: np.ndarray, estimates: np.ndarray, nb_channels: int
) -> np.ndarray:
    """Energies of ``P_j, P, P_j - s, P - P_j, s_hat - P`` per window and source.

    Args:
        projector: filter responses (from :func:`filter_spectra`) at a size of at least
            ``window + L - 1`` (no circular wrap).
        references, estimates: windows from :func:`~.sdr.stack_windows`,
            ``(nb_windows, window, R)`` with ``R`` channel rows.
        nb_channels: channels per source.

    Returns:
        ``(5, nb_sources, nb_windows)``.
    """
    n, weights = projector.fft_size, projector.weights
    refs = np.fft.rfft(references, n=n, axis=1).transpose(1, 2, 0)  # (F, R, nb_windows)
    ests = np.fft.rfft(estimates, n=n, axis=1).transpose(1, 2, 0)
    rows = refs.shape[1]
    # per frequency: (2 R, R) filter responses times (R, nb_windows) reference spectra
    proj = np.matmul(projector.spectra, refs)
    own, full = proj[:, :rows], proj[:, rows:]
    buffer = np.empty(refs.shape, dtype=refs.dtype)
    energy = [_weighted_power(weights, proj)]  # P_j, then P
    for a, b in ((own, refs), (full, own), (ests, full)):  # spatial, interference, artifacts
        energy.append(_weighted_power(weights, np.subtract(a, b, out=buffer)))
    total = np.concatenate(energy).reshape(5, rows // nb_channels, nb_channels, -1)
    return np.asarray(total.sum(axis=2))


def _weighted_power(weights: np.ndarray, spec: np.ndarray) -> np.ndarray:
    """``sum_f weights[f] |spec[f, ...]|^2`` (C-contiguous ``spec``), without temporaries."""
    flat = spec.view(np.float64).reshape(spec.shape[0], -1)
    return np.asarray(np.einsum("f,fk,fk->k", weights, flat, flat).reshape(-1, 2).sum(axis=1))


def framewise_scores(
    references: np.ndarray,
    estimates: np.ndarray,
    filters: DistortionFilters,
    window: int,
    hop: int,
) -> BSSEvalScores:
    """Score every window with filters estimated on the whole signal (museval's v4).

    Args:
        references, estimates: ``(nb_sources, nb_samples, nb_channels)``.
        filters: from :func:`distortion_filters`.
        window, hop: in samples.

    Returns:
        the four metrics, each ``(nb_sources, nb_windows)``.
    """
    nb_src, nb_samples, nb_ch = references.shape
    bounds = window_bounds(nb_samples, window, hop)
    fft_size = _fast_length(bounds[0][1] - bounds[0][0] + filters.length - 1)
    projector = _Projector(filter_spectra(filters, fft_size), fft_size)
    out = np.full((4, nb_src, len(bounds)), np.nan)
    for first, chunk in window_chunks(bounds, WINDOWS_PER_CHUNK):
        refs = stack_windows(references, chunk)
        ests = stack_windows(estimates, chunk)
        true, err, silent = window_sums(refs, ests, nb_ch)
        own, proj, spat, interf, artif = _projection_energies(projector, refs, ests, nb_ch)
        scores = np.stack(
            [
                safe_db(true.T, err.T),
                safe_db(true.T, spat),
                safe_db(own, interf),
                safe_db(proj, artif),
            ]
        )
        scores[:, :, silent] = np.nan
        out[:, :, first : first + len(chunk)] = scores
    return BSSEvalScores(*out)


def bss_eval_v4(
    references: ArrayLike,
    estimates: ArrayLike,
    window: int = 44100,
    hop: int = 44100,
    filters_len: int = 512,
    regularization: float = 0.0,
) -> BSSEvalScores:
    """BSSEval v4 as computed by museval 0.4.1 (``museval.evaluate``, mode ``"v4"``).

    Images variant, no permutation search (estimate ``j`` is scored against reference
    ``j``), 512-tap distortion filters estimated once on the whole signal. A window in
    which any reference or any estimate is silent (channel sum exactly zero throughout)
    is NaN for every source and metric; the trailing partial window is not scored.

    ISR, SIR and SAR rest on a least-squares system of ``nb_sources * nb_channels * 512``
    unknowns. With band-limited references (e.g. the AAC-coded MUSDB18 stems) that system
    is badly conditioned and these three metrics are sensitive to rounding — in museval
    as here (see ``docs/evaluation.md``). SDR does not use it and is always stable.

    Args:
        references, estimates: ``(nb_sources, nb_samples, nb_channels)`` (or
            ``(nb_sources, nb_samples)`` for mono), same shape, any real dtype.
        window, hop: window length and hop in samples (Default: 44100, 1 s at 44.1 kHz).
        filters_len: distortion filter taps (Default: 512).
        regularization: opt-in, better-conditioned variant: adds ``regularization`` times
            each reference channel's energy to the Gram matrix diagonal, as if independent
            white noise that much weaker were added to each reference (e.g. ``10**-4.5``
            for -45 dB). Default 0: museval's numbers.

    Returns:
        :class:`BSSEvalScores` ``(sdr, isr, sir, sar)``, each ``(nb_sources, nb_windows)``.

    Raises:
        MetricsInputError: mismatched shapes (naming both), NaN samples, a source silent
            over the whole signal (museval raises too), or bad window/hop/filters_len.

    Example:
        >>> sdr, isr, sir, sar = bss_eval_v4(refs, ests)       # doctest: +SKIP
    """
    refs, ests = check_pair(references, estimates)
    window, hop = check_framing(window, hop)
    if isinstance(filters_len, bool) or not isinstance(filters_len, int) or filters_len < 1:
        raise MetricsInputError(f"filters_len must be a positive integer, got {filters_len!r}")
    if not regularization >= 0:
        raise MetricsInputError(f"regularization must be >= 0, got {regularization!r}")
    check_not_silent(refs, ests)
    filters = distortion_filters(refs, ests, filters_len, float(regularization))
    return framewise_scores(refs, ests, filters, window, hop)
