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


def _lower_solve(factor: np.ndarray, rhs: np.ndarray, trans: int = 0) -> np.ndarray:
    """``factor^{-1} rhs`` (``trans=1``: ``factor^{-T} rhs``) for a lower triangular
    ``factor`` (LAPACK ``dtrtrs``)."""
    out, info = lapack.dtrtrs(factor, rhs, lower=1, trans=trans)
    if info != 0:
        raise NotPositiveDefinite("a Schur complement block is singular")
    return np.asarray(out)


def _solve(matrix: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """``matrix^{-1} rhs`` for a small square ``matrix`` (LAPACK ``dgesv``, as
    ``numpy.linalg.solve``, without its per-call overhead)."""
    _, _, out, info = lapack.dgesv(matrix, rhs)
    if info != 0:
        raise NotPositiveDefinite("a Schur complement block is singular")
    return np.asarray(out)


class BlockCholesky:
    """A lower Cholesky factor ``L`` (``T = L L^T``) stored by block columns.

    Block column ``k`` (rows ``k p …``, ``p`` columns; its top block lower triangular) is
    a contiguous ``(n - k p, p)`` view of one flat buffer: half the memory of a dense
    ``(n, n)`` factor, written in order. (A dense factor filled block row by block row
    costs more in page faults on a fresh process than the factorization itself.)

    Args:
        columns: the block columns, in order.
    """

    def __init__(self, columns: list[np.ndarray]) -> None:
        self.columns = columns
        self.block = int(columns[0].shape[1])
        self.size = int(columns[0].shape[0])

    @classmethod
    def from_dense(cls, factor: np.ndarray, block: int) -> BlockCholesky:
        """The block columns of a dense lower triangular ``(n, n)`` ``factor``."""
        n = factor.shape[0]
        return cls([np.array(factor[k:, k : k + block]) for k in range(0, n, block)])

    def dense(self) -> np.ndarray:
        """``L`` as a dense ``(n, n)`` lower triangular array."""
        out = np.zeros((self.size, self.size))
        for k, col in enumerate(self.columns):
            out[k * self.block :, k * self.block : (k + 1) * self.block] = col
        return out

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """``T^-1 rhs = L^-T L^-1 rhs`` by blocked substitutions; ``rhs`` ``(n, r)``."""
        p = self.block
        x = np.array(rhs, dtype=np.float64)
        for k, col in enumerate(self.columns):  # L y = rhs, column by column
            part = x[k * p : (k + 1) * p]
            part[...] = _lower_solve(col[:p], part)
            x[(k + 1) * p :] -= col[p:] @ part
        for k in range(len(self.columns) - 1, -1, -1):  # L^T x = y, row by row
            col = self.columns[k]
            part = x[k * p : (k + 1) * p]
            part -= col[p:].T @ x[(k + 1) * p :]
            part[...] = _lower_solve(col[:p], part, trans=1)
        return x


def block_toeplitz_cholesky(blocks: np.ndarray) -> BlockCholesky:
    """Lower Cholesky factor ``L`` of the symmetric block-Toeplitz matrix ``T = L L^T``.

    Args:
        blocks: ``(m, p, p)``: ``T``'s first block column, ``T[i, j] = blocks[i - j]``
            for ``i >= j`` and ``blocks[j - i].T`` above the diagonal; ``blocks[0]``
            must be symmetric.

    Returns:
        ``L`` by block columns (``.solve`` solves ``T x = b``; ``.dense()`` writes it out).

    Raises:
        NotPositiveDefinite: ``T`` is not numerically positive definite.
    """
    m, p, _ = blocks.shape
    n = m * p
    first = _chol(blocks[0])
    store = np.empty(p * p * m * (m + 1) // 2)  # all block columns, one after the other
    columns = []
    start = 0
    # generator [u, v] with T - Z T Z^T = u u^T - v v^T (Z: shift down by one block)
    u = store[: n * p].reshape(n, p)
    u[...] = _lower_solve(first, blocks.reshape(n, p).T).T
    u[:p] = first  # R0 L0^-T = L0, exactly lower triangular
    v = u.copy()
    v[:p] = 0
    eye = np.eye(p)
    for _ in range(1, m):
        columns.append(u)
        start += u.size
        u, v = u[:-p], v[p:]  # shift u down one block, drop the (now zero) first block row
        top_u, top_v = u[:p], v[:p]
        gram_u = top_u @ top_u.T
        # a J-unitary transform that zeroes the top block of v: [top_u, top_v] -> [x, 0]
        x = _chol(gram_u - top_v @ top_v.T)
        t_u = _lower_solve(x, top_u).T  # A^T X^-T
        y = _lower_solve(x, top_v)  # X^-1 B
        w = _chol(eye + y.T @ y)  # w w^T = (I - K^T K)^-1 with K = A^-1 B
        c2 = _lower_solve(w, eye).T  # c2 c2^T = I - K^T K
        # mixed form: new u from old u and v; new v from new u and old v
        new_u = store[start : start + u.size].reshape(u.shape)  # block column k of L
        np.matmul(u, t_u, out=new_u)
        new_u -= v @ y.T
        mix = x.T @ _solve(gram_u, top_v) @ w
        new_v = v @ c2 - new_u @ mix
        new_u[:p] = x
        new_v[:p] = 0
        u, v = new_u, new_v
    columns.append(u)
    return BlockCholesky(columns)


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
