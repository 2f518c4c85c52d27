"""Lag-limited cross-correlations of long multichannel signals, by blocks of FFTs.

BSSEval needs the inner products between every reference channel delayed by
``0 … L-1`` samples and every reference or estimate channel, i.e. cross-correlations
at lags ``|k| < L`` only. museval gets them from one full-length FFT product per pair of
channels (about a hundred FFTs of ``2^23`` points for a 3-minute song). Here every
signal is cut into blocks, each block is transformed once, and the per-pair products are
summed over blocks with a matrix product per frequency (linearity of the inverse FFT);
one short inverse FFT per pair then gives all lags. The result is the same exact linear
correlation (zero padding removes any circular wrap), with far fewer transforms.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

#: FFT length of the correlation blocks (each block carries 2·max_lag samples of margin)
BLOCK_FFT = 16384
#: blocks transformed together (bounds memory: about 3 MB per block for 4 stereo pairs)
BLOCKS_PER_CHUNK = 16


def channels_segment(groups: Sequence[np.ndarray], start: int, stop: int) -> np.ndarray:
    """Samples ``start:stop`` of every channel of every source, zero outside the signal.

    Args:
        groups: arrays ``(nb_sources, nb_samples, nb_channels)`` of the same length.
        start, stop: sample range; may reach outside ``[0, nb_samples)``.

    Returns:
        ``(stop - start, sum of nb_sources * nb_channels)`` float64, time-major; columns
        ordered by group, then source, then channel.
    """
    cols = sum(g.shape[0] * g.shape[2] for g in groups)
    out = np.zeros((stop - start, cols))
    nb_samples = groups[0].shape[1]
    lo, hi = max(start, 0), min(stop, nb_samples)
    col = 0
    for g in groups:
        k = g.shape[0] * g.shape[2]
        if hi > lo:
            out[lo - start : hi - start, col : col + k].reshape(hi - lo, g.shape[0], -1)[:] = g[
                :, lo:hi
            ].transpose(1, 0, 2)
        col += k
    return out


def _block_length(nb_samples: int, max_lag: int) -> tuple[int, int]:
    """``(fft_size, block)``: FFT length and samples per block (``fft_size - 2 max_lag``)."""
    need = nb_samples + 2 * max_lag
    fft_size = 1 << int(np.ceil(np.log2(max(need, 4 * max_lag + 2))))
    fft_size = min(fft_size, max(BLOCK_FFT, 1 << int(np.ceil(np.log2(8 * max_lag + 2)))))
    return fft_size, fft_size - 2 * max_lag


def lagged_xcorr(
    x_groups: Sequence[np.ndarray], y_groups: Sequence[np.ndarray], max_lag: int
) -> np.ndarray:
    """Cross-correlations ``R[p, q, max_lag + k] = sum_n x_p[n] y_q[n + k]``, ``|k| <= max_lag``.

    Signals are taken as zero outside ``[0, nb_samples)`` (linear, not circular, correlation).

    Args:
        x_groups, y_groups: arrays ``(nb_sources, nb_samples, nb_channels)``, all of the
            same length; ``p`` and ``q`` run over their (source, channel) rows as in
            :func:`channels_segment`.
        max_lag: largest lag in samples.

    Returns:
        ``(nb_x_rows, nb_y_rows, 2 max_lag + 1)`` float64.
    """
    nb_samples = x_groups[0].shape[1]
    fft_size, block = _block_length(nb_samples, max_lag)
    nb_blocks = -(-nb_samples // block)
    acc: np.ndarray | None = None
    for b0 in range(0, nb_blocks, BLOCKS_PER_CHUNK):
        b1 = min(b0 + BLOCKS_PER_CHUNK, nb_blocks)
        n = b1 - b0
        xs = channels_segment(x_groups, b0 * block, b1 * block)
        x_spec = np.fft.rfft(xs.reshape(n, block, -1), n=fft_size, axis=1)  # (n, F, rows)
        ys = channels_segment(y_groups, b0 * block - max_lag, b1 * block + max_lag)
        y_blocks = sliding_window_view(ys, block + 2 * max_lag, axis=0)[::block]
        y_spec = np.fft.rfft(np.moveaxis(y_blocks, -1, 1), n=fft_size, axis=1).conj()
        # per frequency: (nb_x_rows, n) @ (n, nb_y_rows), summed over the blocks; this is
        # the conjugate of the cross-spectrum sum (conjugating the y side is cheaper)
        prod = np.matmul(x_spec.transpose(1, 2, 0), y_spec.transpose(1, 0, 2))
        acc = prod if acc is None else acc + prod
    assert acc is not None
    lags = np.fft.irfft(acc.conj(), n=fft_size, axis=0)[: 2 * max_lag + 1]
    return np.ascontiguousarray(lags.transpose(1, 2, 0))
