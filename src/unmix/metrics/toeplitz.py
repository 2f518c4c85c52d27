"""Cholesky factor of a symmetric positive definite block-Toeplitz matrix in ``O(p n^2)``.

BSSEval's Gram matrix of delayed references, ordered lag-major, is block Toeplitz: block
``(i, j)`` (``p x p``, ``p`` reference channels) depends on ``i - j`` only. The generalized
Schur algorithm factors such a matrix from a generator of ``2 p`` columns, updated by one
``J``-unitary (hyperbolic) transform per block step, instead of the ``n^3 / 3`` of a dense
Cholesky (``n = 4096`` for 4 stereo sources and 512 taps: about 40 times fewer operations).

Numerics: the step transform is applied in the *mixed* form (the new ``v`` is computed
from the new ``u`` and the old ``v``, never from the old ``u``), the form that Bojanczyk,
Brent, de Hoog and Sweet (SIAM J. Matrix Anal. Appl. 16(1), 1995) showed weakly stable for
hyperbolic rotations; every small factor comes from a Cholesky decomposition of a positive
definite matrix formed without cancellation, except the Schur-complement block
``A A^T - B B^T``, which a dense Cholesky forms by subtraction too. No stability proof is
claimed for this block variant: the tests compare it with dense factorizations, and the
caller checks the backward error of every solution it uses (see
:func:`unmix.metrics.filters.distortion_filters`).

Reference: T. Kailath, A. H. Sayed, "Displacement structure: theory and applications",
SIAM Review 37(3), 1995.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import lapack


class NotPositiveDefinite(np.linalg.LinAlgError):
    """The block-Toeplitz matrix is not numerically positive definite."""


def _chol(matrix: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of a small SPD matrix (LAPACK ``dpotrf``, no checks)."""
    factor, info = lapack.dpotrf(matrix, lower=1, clean=1)
    if info != 0:
        raise NotPositiveDefinite("a Schur complement block is not positive definite")
    return np.asarray(factor)


def _lower_solve(factor: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """``factor^{-1} rhs`` for a lower triangular ``factor`` (LAPACK ``dtrtrs``)."""
    out, info = lapack.dtrtrs(factor, rhs, lower=1)
    if info != 0:
        raise NotPositiveDefinite("a Schur complement block is singular")
    return np.asarray(out)


def block_toeplitz_cholesky(blocks: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor ``L`` of the symmetric block-Toeplitz matrix ``T = L L^T``.

    Args:
        blocks: ``(m, p, p)``: ``T``'s first block column, ``T[i, j] = blocks[i - j]``
            for ``i >= j`` and ``blocks[j - i].T`` above the diagonal; ``blocks[0]``
            must be symmetric.

    Returns:
        ``(m p, m p)`` lower triangular, Fortran-ordered (what LAPACK takes without a copy).

    Raises:
        NotPositiveDefinite: ``T`` is not numerically positive definite.
    """
    m, p, _ = blocks.shape
    n = m * p
    first = _chol(blocks[0])
    # generator [u, v] with T - Z T Z^T = u u^T - v v^T (Z: shift down by one block)
    u = np.ascontiguousarray(_lower_solve(first, blocks.reshape(n, p).T).T)
    u[:p] = first  # R0 L0^-T = L0, exactly lower triangular
    v = u.copy()
    v[:p] = 0
    upper = np.zeros((n, n))  # L^T, filled by rows: contiguous writes
    upper[:p] = u.T
    eye = np.eye(p)
    for k in range(1, m):
        u, v = u[:-p], v[p:]  # shift u down one block, drop the (now zero) first block row
        top_u, top_v = u[:p], v[:p]
        # a J-unitary transform that zeroes the top block of v: [top_u, top_v] -> [x, 0]
        x = _chol(top_u @ top_u.T - top_v @ top_v.T)
        t_u = _lower_solve(x, top_u).T  # A^T X^-T
        y = _lower_solve(x, top_v)  # X^-1 B
        w = _chol(eye + y.T @ y)  # w w^T = (I - K^T K)^-1 with K = A^-1 B
        c2 = _lower_solve(w, eye).T  # c2 c2^T = I - K^T K
        # mixed form: new u from old u and v; new v from new u and old v
        new_u = u @ t_u - v @ y.T
        mix = x.T @ np.linalg.solve(top_u @ top_u.T, top_v) @ w
        new_v = v @ c2 - new_u @ mix
        new_u[:p] = x
        new_v[:p] = 0
        u, v = new_u, new_v
        upper[k * p : (k + 1) * p, k * p :] = u.T
    return upper.T


def block_toeplitz_matvec(blocks: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``T @ x`` for the symmetric block-Toeplitz ``T`` of :func:`block_toeplitz_cholesky`.

    A block convolution, by FFTs over the block index (``O(p^2 m log m)``, no dense ``T``).

    Args:
        blocks: ``(m, p, p)``, as for :func:`block_toeplitz_cholesky`.
        x: ``(m p, k)``, rows ordered (block, row within the block).

    Returns:
        ``(m p, k)``.
    """
    m, p, _ = blocks.shape
    k = x.shape[1]
    size = 1 << max(1, (2 * m - 2).bit_length())
    # coefficients c[d] for d = -(m-1) … m-1, stored at d + m - 1: T[i, j] = c[i - j]
    coeffs = np.zeros((size, p, p))
    coeffs[m - 1 :: -1] = blocks.transpose(0, 2, 1)  # d <= 0: blocks[-d].T
    coeffs[m - 1 : 2 * m - 1] = blocks  # d >= 0
    spec = np.fft.rfft(coeffs, axis=0) @ np.fft.rfft(x.reshape(m, p, k), n=size, axis=0)
    return np.asarray(np.fft.irfft(spec, n=size, axis=0)[m - 1 : 2 * m - 1].reshape(m * p, k))
