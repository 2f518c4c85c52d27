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

with sums over the samples and channels of the (padded) window. The filters come from
:mod:`.filters` (correlations by blocks of FFTs in :mod:`.correlation`, one block-Toeplitz
factorization shared by all estimates in :mod:`.toeplitz`); this module scores the windows
with their energies computed in the frequency domain (Parseval), so no filtered signal is
ever formed in the time domain. Chunks of windows run on a few threads
(:mod:`.parallel`); the results do not depend on how many.

References:
    E. Vincent, R. Gribonval, C. Févotte, "Performance measurement in blind audio source
    separation", IEEE TASLP 14(4), 2006.
    A. Liutkus, F.-R. Stöter, N. Ito, "The 2018 Signal Separation Evaluation Campaign",
    LVA/ICA 2018.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from .correlation import fast_fft_length, frequency_slabs, gather_blocks, spectra
from .filters import SOLVERS, DistortionFilters, distortion_filters
from .framing import check_framing, window_bounds
from .parallel import nb_threads, ordered_map, single_threaded_blas
from .sdr import safe_db
from .validation import MetricsInputError, check_not_silent, check_pair, silent_sources

#: most windows transformed together in the scoring stage (bounds memory)
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


class FilterResponses(NamedTuple):
    """Frequency responses of the projections, from reference channels to estimate channels.

    Times the reference spectra of a frequency, they give the projections' spectra.

    Attributes:
        own: ``(F, nb_sources, nb_channels, nb_channels)`` complex: ``[f, j, c_out, c_in]``,
            the own-reference projection ``P_j`` (reference ``j`` to estimate ``j`` only;
            kept compact, not as a block-diagonal matrix).
        full: ``(F, R, R)`` complex, ``R = nb_sources nb_channels``: rows ``(estimate,
            c_out)``, columns ``(j, c_in)``, the projection ``P`` on all references.
    """

    own: np.ndarray
    full: np.ndarray


def filter_responses(filters: DistortionFilters, fft_size: int) -> FilterResponses:
    """Frequency responses of the projection filters at ``fft_size // 2 + 1`` frequencies."""
    nb_src, nb_ch, taps = filters.nb_sources, filters.nb_channels, filters.length
    rows = nb_src * nb_ch
    # taps last and contiguous: FFTs along the last axis run twice as fast as along others
    full_t = filters.all_refs.reshape(rows, taps, rows).transpose(2, 0, 1)  # (out, in, taps)
    own_t = filters.own_ref.reshape(nb_src, nb_ch, taps, nb_ch).transpose(0, 3, 1, 2)
    full_f = np.fft.rfft(np.ascontiguousarray(full_t), n=fft_size, axis=-1)  # (out, in, F)
    own_f = np.fft.rfft(np.ascontiguousarray(own_t), n=fft_size, axis=-1)  # (j, out, in, F)
    return FilterResponses(
        np.ascontiguousarray(own_f.transpose(3, 0, 1, 2)),
        np.ascontiguousarray(full_f.transpose(2, 0, 1)),
    )


def parseval_weights(fft_size: int) -> np.ndarray:
    """Weights turning ``|rfft(x, fft_size)|^2`` sums over frequencies into ``sum x^2``."""
    weights = np.full(fft_size // 2 + 1, 2.0 / fft_size)
    weights[0] = 1.0 / fft_size
    if fft_size % 2 == 0:
        weights[-1] = 1.0 / fft_size
    return weights


#: the energies of :func:`window_energies`, in order
ENERGIES = ("own", "proj", "spatial", "interference", "artifacts", "true", "error")


def window_energies(
    responses: FilterResponses, scale: np.ndarray, spec: np.ndarray, nb_rows: int
) -> np.ndarray:
    """Energies per window and channel row, computed from spectra (Parseval).

    In order (:data:`ENERGIES`): ``|P_j|^2, |P|^2, |P_j - s|^2, |P - P_j|^2,
    |s_hat - P|^2, |s|^2, |s_hat - s|^2``.

    Args:
        responses: from :func:`filter_responses`.
        scale: square roots of :func:`parseval_weights`, ``(F,)``.
        spec: spectra of the zero-padded windows, ``(2 R, nb_windows, F)``: reference
            rows, then estimate rows; the FFT is at least ``window + L - 1`` long, so the
            filtered windows do not wrap around.
        nb_rows: ``R``, the reference channel rows.

    Returns:
        ``(7, R, nb_windows)``.
    """
    nb_win = spec.shape[1]
    energy = np.zeros((len(ENERGIES), nb_rows * nb_win * 2))
    own_resp, full_resp = responses
    by_source = own_resp.shape[1:3]  # (nb_sources, nb_channels)
    terms: np.ndarray | None = None
    # weighted spectra: plain sums of squares are the time-domain energies
    refs_slabs = frequency_slabs(spec[:nb_rows], scale)
    slabs = zip(refs_slabs, frequency_slabs(spec[nb_rows:], scale), strict=True)
    for (freqs, refs), (_, ests) in slabs:  # each (f, R, nb_windows), contiguous
        if terms is None or terms.shape[1] != refs.shape[0]:
            terms = np.empty((len(ENERGIES), *refs.shape), dtype=complex)
        own, full = terms[0], terms[1]
        shape = (refs.shape[0], *by_source, nb_win)  # (f, source, channel, window)
        np.matmul(own_resp[freqs], refs.reshape(shape), out=own.reshape(shape))  # P_j
        np.matmul(full_resp[freqs], refs, out=full)  # P
        np.subtract(own, refs, out=terms[2])  # spatial distortion
        np.subtract(full, own, out=terms[3])  # interference
        np.subtract(ests, full, out=terms[4])  # artifacts
        terms[5] = refs
        np.subtract(ests, refs, out=terms[6])  # the whole error (SDR)
        flat = terms.view(np.float64).reshape(len(ENERGIES), refs.shape[0], -1)
        energy += np.einsum("kfx,kfx->kx", flat, flat)
    return np.asarray(energy.reshape(len(ENERGIES), nb_rows, nb_win, 2).sum(axis=-1))


def even_chunks(nb_windows: int) -> list[tuple[int, int]]:
    """``[(first, stop), ...]``: the windows in an even number of chunks of nearly equal
    size, at most :data:`WINDOWS_PER_CHUNK` each.

    An even count lets two threads share a short input (7 windows: 4 + 3, not 7 + 0),
    and the chunks do not depend on the number of threads, so neither do the results.
    """
    count = 2 * -(-nb_windows // (2 * WINDOWS_PER_CHUNK))
    count = max(1, min(nb_windows, count))
    edges = [nb_windows * i // count for i in range(count + 1)]
    return list(itertools.pairwise(edges))


def silent_windows(groups: list[np.ndarray], bounds: list[tuple[int, int]]) -> np.ndarray:
    """museval's rule: a window is silent when any source of any group has a zero
    channel sum at every sample of it. Returns ``(len(bounds),)`` booleans."""
    return np.array([any(silent_sources(g[:, a:b]).any() for g in groups) for a, b in bounds])


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
        filters: from :func:`~.filters.distortion_filters`.
        window, hop: in samples.

    Returns:
        the four metrics, each ``(nb_sources, nb_windows)``.
    """
    nb_src, nb_samples, nb_ch = references.shape
    rows = nb_src * nb_ch
    bounds = window_bounds(nb_samples, window, hop)
    length = bounds[0][1] - bounds[0][0]
    fft_size = fast_fft_length(length + filters.length - 1)
    responses = filter_responses(filters, fft_size)
    scale = np.sqrt(parseval_weights(fft_size))

    def score_chunk(span: tuple[int, int]) -> np.ndarray:
        chunk = bounds[span[0] : span[1]]
        samples = gather_blocks([references, estimates], [a for a, _ in chunk], length, fft_size)
        spec = spectra(samples)
        del samples
        energies = window_energies(responses, scale, spec, rows)
        del spec
        own, proj, spat, interf, artif, true, err = energies.reshape(
            len(ENERGIES), nb_src, nb_ch, len(chunk)
        ).sum(axis=2)
        scores = np.stack(
            [
                safe_db(true, err),
                safe_db(true, spat),
                safe_db(own, interf),
                safe_db(proj, artif),
            ]
        )  # (4, nb_sources, nb_windows)
        scores[:, :, silent_windows([references, estimates], chunk)] = np.nan
        return scores

    chunks = ordered_map(score_chunk, even_chunks(len(bounds)), nb_threads())
    return BSSEvalScores(*np.concatenate(list(chunks), axis=2))


def bss_eval_v4(
    references: ArrayLike,
    estimates: ArrayLike,
    window: int = 44100,
    hop: int = 44100,
    filters_len: int = 512,
    regularization: float = 0.0,
    *,
    solver: str = "schur",
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
    if solver not in SOLVERS:
        raise MetricsInputError(f"solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
    with single_threaded_blas():  # the chunks run on threads of their own
        filters = distortion_filters(refs, ests, filters_len, float(regularization), solver)
        return framewise_scores(refs, ests, filters, window, hop)
