"""Lag-limited cross-correlations of long multichannel signals, by blocks of FFTs.

BSSEval needs the inner products between every reference channel delayed by
``0 … L-1`` samples and every reference or estimate channel, i.e. cross-correlations
at lags ``|k| < L`` only. museval gets them from one full-length FFT product per pair of
channels (about a hundred FFTs of ``2^23`` points for a 3-minute song). Here:

1. the signal is cut into blocks of ``B`` samples; every channel of every block is
   transformed **once** (``x`` and ``y`` channels share their transforms), with enough zero
   padding (``B + max_lag``) that the block's correlations at ``|k| <= max_lag`` have no
   circular wrap;
2. the cross-spectra are summed over blocks with one small matrix product per frequency
   (linearity of the inverse FFT), and one inverse FFT per channel pair gives all lags;
3. the products that straddle a block boundary (at most ``max_lag`` samples on each side)
   are added from short transforms of the ``2 max_lag`` samples around each boundary.

The result is the exact linear correlation of the whole signals (zero outside them).
Blocks are gathered channel-major and transformed along time; the spectra are then
transposed slab by slab (:func:`frequency_slabs`) so that the per-frequency matrix
products run on small contiguous arrays that stay in the CPU caches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import scipy.fft

from .parallel import nb_threads, ordered_map, scratch

#: numpy >= 2 writes FFTs into a given array (reused buffers: no fresh memory per chunk)
HAS_FFT_OUT = np.lib.NumpyVersion(np.__version__) >= "2.0.0"

#: FFT length of the correlation blocks
BLOCK_FFT = 16384
#: blocks transformed together (about 17 MB of samples for 16 channels)
BLOCKS_PER_CHUNK = 8
#: complex values in one frequency slab (64k: 1 MB, a few of them fit in the caches)
SLAB_ELEMENTS = 1 << 16


def gather_blocks(
    groups: Sequence[np.ndarray], starts: Sequence[int], length: int, size: int
) -> np.ndarray:
    """Zero-padded blocks of every channel, channel-major, ready for an FFT.

    Args:
        groups: arrays ``(nb_sources, nb_samples, nb_channels)`` of the same length.
        starts: first sample of each block; a block may reach outside
            ``[0, nb_samples)``, where the signals are taken as zero.
        length: samples per block.
        size: padded length (``>= length``); the block's samples come first.

    Returns:
        ``(rows, len(starts), size)`` float64, ``rows`` ordered by group, then source,
        then channel; entry ``[r, b, t]`` is sample ``starts[b] + t`` of row ``r``. It is
        the calling thread's scratch buffer (:func:`~.parallel.scratch`): valid until
        the thread's next call.
    """
    rows = sum(g.shape[0] * g.shape[2] for g in groups)
    out = scratch("blocks", (rows, len(starts), size), np.float64)
    out[:, :, length:] = 0
    nb_samples = groups[0].shape[1]
    for b, a in enumerate(starts):
        lo, hi = max(a, 0), min(a + length, nb_samples)
        out[:, b, : max(0, min(lo - a, length))] = 0
        out[:, b, max(0, hi - a) : length] = 0
        if hi <= lo:
            continue
        row = 0
        for g in groups:
            for src in g:  # (nb_samples, nb_channels): a transposed copy per source
                out[row : row + g.shape[2], b, lo - a : hi - a] = src[lo:hi].T
                row += g.shape[2]
    return out


def spectra(blocks: np.ndarray, name: str = "spectra") -> np.ndarray:
    """Real FFT of :func:`gather_blocks` output along time: ``(rows, nb_blocks, F)``.

    Written into the calling thread's scratch buffer ``name`` (valid until its next use).
    """
    shape = (*blocks.shape[:-1], blocks.shape[-1] // 2 + 1)
    if HAS_FFT_OUT:
        return np.asarray(np.fft.rfft(blocks, axis=-1, out=scratch(name, shape, complex)))
    return np.asarray(scipy.fft.rfft(blocks, axis=-1))


#: odd factors of the FFT lengths used (``2^a`` times one of them): per sample and per
#: ``log2`` of the length, numpy's pocketfft runs all of them at about the same speed;
#: odd factors with 7 or 11 in them cost 30-50 % more (measured: 45056 = 11 * 2^12,
#: 22 ms, against 46080 = 45 * 2^10, 16 ms, for the 1-s windows at 44.1 kHz)
FAST_ODD_FACTORS = (1, 3, 5, 9, 15, 25, 27, 45)


def fast_fft_length(n: int) -> int:
    """A length ``>= n`` for which real FFTs are fast: ``2^a`` times an odd factor of
    :data:`FAST_ODD_FACTORS` (so ``2^a 3^b 5^c`` with small ``b``, ``c``).

    (pocketfft's general ``next_fast_len`` also picks 7- and 11-smooth lengths, which
    are noticeably slower.)
    """
    best = 1 << max(0, (n - 1).bit_length())
    for odd in FAST_ODD_FACTORS[1:]:
        size = odd
        while size < n:
            size *= 2
        best = min(best, size)
    return best


def frequency_slabs(
    spec: np.ndarray, scale: np.ndarray | None = None
) -> Iterator[tuple[slice, np.ndarray]]:
    """Slabs of frequencies of ``spec`` ``(rows, nb_blocks, F)``, frequency-major.

    Yields ``(freqs, slab)`` with ``slab`` ``(len(freqs), rows, nb_blocks)`` contiguous: in
    that layout the per-frequency matrices are BLAS-ready, and a slab is small enough for
    the work on it to stay in the CPU caches (the whole spectra would not). ``scale``
    ``(F,)`` multiplies each frequency on the way.
    """
    rows, nb_blocks, nb_freqs = spec.shape
    step = max(16, SLAB_ELEMENTS // max(1, rows * nb_blocks))
    flat = spec.reshape(rows * nb_blocks, nb_freqs)
    for f0 in range(0, nb_freqs, step):
        freqs = slice(f0, min(f0 + step, nb_freqs))
        if scale is None:
            slab = np.ascontiguousarray(flat[:, freqs].T)
        else:
            slab = np.multiply(flat[:, freqs].T, scale[freqs, None], order="C")
        yield freqs, slab.reshape(-1, rows, nb_blocks)


def _lags(summed: np.ndarray, fft_size: int, max_lag: int) -> np.ndarray:
    """Lags ``-max_lag … max_lag`` of ``irfft(conj(summed))``: ``(rows, nb_y, 2 max_lag + 1)``.

    ``summed`` is ``(F, rows, nb_y)``. It is transposed first: inverse FFTs along the
    last, contiguous axis run about twice as fast as along the first.
    """
    rows = np.conjugate(summed.transpose(1, 2, 0), order="C")
    full = np.fft.irfft(rows, n=fft_size, axis=-1)
    return np.concatenate([full[..., fft_size - max_lag :], full[..., : max_lag + 1]], axis=-1)


def cross_spectra(
    acc: np.ndarray, x_spec: np.ndarray, y_spec: np.ndarray, xs: slice, ys: slice, add: bool
) -> None:
    """``acc[f] (+)= sum_b X[p, b, f] conj(Y[q, b, f])`` for the rows ``xs`` of ``x_spec``
    and ``ys`` of ``y_spec`` (spectra ``(rows, nb_blocks, F)``), ``acc`` ``(F, p, q)``;
    without ``add`` the products are written straight into ``acc``."""
    if x_spec is y_spec:  # one transposed copy serves both sides
        slabs = ((freqs, x, x) for freqs, x in frequency_slabs(x_spec))
    else:
        pairs = zip(frequency_slabs(x_spec), frequency_slabs(y_spec), strict=True)
        slabs = ((freqs, x, y) for (freqs, x), (_, y) in pairs)
    for freqs, x, y in slabs:
        y_h = y[:, ys].conj().transpose(0, 2, 1)
        if add:
            acc[freqs] += np.matmul(x[:, xs], y_h)
        else:
            np.matmul(x[:, xs], y_h, out=acc[freqs])


def lagged_xcorr(
    x_groups: Sequence[np.ndarray], y_groups: Sequence[np.ndarray], max_lag: int
) -> np.ndarray:
    """Cross-correlations ``R[p, q, max_lag + k] = sum_n x_p[n] y_q[n + k]``, ``|k| <= max_lag``.

    Signals are taken as zero outside ``[0, nb_samples)`` (linear, not circular, correlation).

    Args:
        x_groups, y_groups: arrays ``(nb_sources, nb_samples, nb_channels)``, all of the
            same length; ``p`` and ``q`` run over their (source, channel) rows in order.
            When ``y_groups`` is a leading part of ``x_groups`` (BSSEval's case: references
            against references and estimates) the transforms are shared.
        max_lag: largest lag in samples.

    Returns:
        ``(nb_x_rows, nb_y_rows, 2 max_lag + 1)`` float64.
    """
    x_groups, y_groups = list(x_groups), list(y_groups)
    shared = len(y_groups) <= len(x_groups) and all(
        a is b for a, b in zip(x_groups, y_groups, strict=False)
    )
    groups = x_groups if shared else x_groups + y_groups
    nb_x = sum(g.shape[0] * g.shape[2] for g in x_groups)
    nb_y = sum(g.shape[0] * g.shape[2] for g in y_groups)
    xs, ys = slice(0, nb_x), slice(0, nb_y) if shared else slice(nb_x, nb_x + nb_y)

    nb_samples = groups[0].shape[1]
    # blocks of B samples, padded to fft_size >= B + max_lag: no wrap at the lags kept
    fft_size = fast_fft_length(max(min(BLOCK_FFT, nb_samples) + max_lag, 4 * max_lag + 1))
    block = fft_size - max_lag
    nb_blocks = -(-nb_samples // block)

    def blocks_part(b0: int) -> np.ndarray:
        starts = [b * block for b in range(b0, min(b0 + BLOCKS_PER_CHUNK, nb_blocks))]
        spec = spectra(gather_blocks(groups, starts, block, fft_size))
        if serial is not None:  # one thread: chunks run in order, add in place
            cross_spectra(serial, spec, spec, xs, ys, add=b0 > 0)
            return serial
        part = np.empty((fft_size // 2 + 1, nb_x, nb_y), dtype=complex)
        cross_spectra(part, spec, spec, xs, ys, add=False)
        return part

    # products across the block boundaries: max_lag samples on each side of each boundary
    bounds = [b * block for b in range(1, nb_blocks)] if max_lag > 0 else []
    seg_fft = fast_fft_length(3 * max_lag + 1)
    per_chunk = max(1, (BLOCKS_PER_CHUNK * block) // (2 * max_lag + 1))

    def boundaries_part(i: int) -> np.ndarray:
        starts = [t - max_lag for t in bounds[i : i + per_chunk]]
        segs = gather_blocks(groups, starts, 2 * max_lag, seg_fft)
        left = segs.copy()
        left[:, :, max_lag:] = 0
        segs[:, :, :max_lag] = 0  # now the right halves
        spec_l, spec_r = spectra(left, "left"), spectra(segs, "right")
        part = np.empty((seg_fft // 2 + 1, nb_x, nb_y), dtype=complex)
        cross_spectra(part, spec_l, spec_r, xs, ys, add=False)
        cross_spectra(part, spec_r, spec_l, xs, ys, add=True)
        return part

    # one pool for both kinds of chunks; partial sums are added in chunk order, whatever
    # the threads: deterministic results (on one thread the blocks' sums go straight into
    # one array, in the same order: the same numbers without a partial array per chunk)
    threads = nb_threads()
    firsts = range(0, nb_blocks, BLOCKS_PER_CHUNK)
    serial = np.empty((fft_size // 2 + 1, nb_x, nb_y), complex) if threads == 1 else None
    tasks: list[tuple[Callable[[int], np.ndarray], int]] = [(blocks_part, b0) for b0 in firsts]
    tasks += [(boundaries_part, i) for i in range(0, len(bounds), per_chunk)]
    parts = ordered_map(lambda task: task[0](task[1]), tasks, threads)
    acc = next(parts)
    for _ in firsts[1:]:
        part = next(parts)
        if part is not acc:
            acc += part
    result = _lags(acc, fft_size, max_lag)
    if bounds:
        bacc = next(parts)
        for part in parts:
            bacc += part
        result += _lags(bacc, seg_fft, max_lag)
    return result
