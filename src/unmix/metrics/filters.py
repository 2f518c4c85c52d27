"""Distortion filters of BSSEval v4: the least-squares projections onto the references.

For every estimate ``s_hat_j`` museval solves, once on the whole signal (v4),

* ``(G + eps I) C = D``: filters from **all** references to ``s_hat_j``, and
* ``(G_jj + eps I) C_j = D_j``: filters from reference ``j`` alone,

where ``G`` is the Gram matrix of the references delayed by ``0 … L-1`` samples
(``nb_sources * nb_channels * L`` unknowns: 4096 for 4 stereo sources and 512 taps) and
``D`` holds their inner products with the estimate. museval factors the dense ``G`` with LU
once per estimate. Here the one ``G`` shared by all estimates is factored once, by the
generalized Schur algorithm on its block-Toeplitz structure (:mod:`.toeplitz`), and the
solution is accepted only when its normwise backward error for museval's system is as
small as a dense LU's (:func:`_schur_solve`, which also handles Gram matrices made
indefinite by rounding); otherwise (and for ``solver="lu"``) museval's dense LU runs. The
own-reference systems are small (1024 unknowns) and solved densely.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
from numpy.lib.stride_tricks import sliding_window_view

from .correlation import lagged_xcorr
from .parallel import nb_threads, ordered_map, scratch
from .toeplitz import NotPositiveDefinite, block_toeplitz_cholesky, block_toeplitz_matvec

#: museval's diagonal loading of the Gram matrix (float64 machine epsilon, absolute)
EPS = float(np.finfo(np.float64).eps)
#: largest accepted normwise backward error ``max|D - G C| / (|G| max|C| + max|D|)`` of
#: the fast solver (a dense LU reaches about 1e-16 on these systems, the Schur factor less)
BACKWARD_ERROR_TOLERANCE = 1e-15
#: diagonal loadings tried for the factorization, relative to the largest diagonal entry
#: (0 first; the others only when rounding makes the Gram matrix indefinite)
ROUNDING_LOADINGS = (0.0, 1e-15, 1e-14)
#: ``"schur"``: block-Toeplitz factorization, checked; ``"lu"``: museval's dense LU
SOLVERS = ("schur", "lu")


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


def gram_matrix(
    ref_corr: np.ndarray, filters_len: int, out: np.ndarray | None = None
) -> np.ndarray:
    """Gram matrix of the delayed reference channels.

    Args:
        ref_corr: ``(P, P, 2L - 1)`` correlations ``R[a, b, L-1+k] = sum_n x_a[n] x_b[n+k]``.
        filters_len: ``L``.
        out: optional ``(P L, P L)`` float64 array to write it into.

    Returns:
        ``(P L, P L)``, exactly symmetric; entry ``((a, p), (b, q))`` is the inner product
        of channel ``a`` delayed by ``p`` with channel ``b`` delayed by ``q``, i.e.
        ``R[a, b, p - q]``: a Toeplitz block per channel pair.
    """
    nb = ref_corr.shape[0]
    size = filters_len
    gram = np.empty((nb * size, nb * size)) if out is None else out
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


def toeplitz_blocks(ref_corr: np.ndarray, filters_len: int) -> np.ndarray:
    """First block column of the Gram matrix ordered lag-major (unknown ``(lag, channel)``).

    Entry ``[d, a, b]`` equals :func:`gram_matrix` ``[(a, d), (b, 0)]`` exactly (the same
    symmetrisation of the autocorrelations), so both describe the same matrix.

    Returns:
        ``(L, P, P)``: block ``(i, j)`` of the lag-major Gram matrix is ``[i - j]`` below
        the diagonal and ``[j - i].T`` above it.
    """
    nb = ref_corr.shape[0]
    mid = filters_len - 1
    blocks = np.empty((filters_len, nb, nb))
    for a in range(nb):
        lags = ref_corr[a, a]
        blocks[:, a, a] = ((lags + lags[::-1]) / 2)[mid:]
        for b in range(a + 1, nb):
            blocks[:, a, b] = ref_corr[a, b, mid:]
            blocks[:, b, a] = ref_corr[a, b, mid::-1]
    return blocks


def museval_solve(matrix: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """museval's solve: LU with partial pivoting, least squares if exactly singular."""
    try:
        return np.asarray(np.linalg.solve(matrix, rhs))
    except np.linalg.LinAlgError:
        return np.asarray(np.linalg.lstsq(matrix, rhs, rcond=None)[0])


def cholesky_solve_in_place(matrix: np.ndarray, rhs: np.ndarray) -> np.ndarray | None:
    """``matrix^-1 rhs`` by Cholesky; None when ``matrix`` is not numerically positive
    definite (then use museval's LU, :func:`museval_solve`).

    A Gram matrix plus ``eps`` loading usually is positive definite: half the work of
    LU, the same solution to rounding. The symmetric C-ordered ``matrix`` is factored in
    place (its transpose is the Fortran-ordered array LAPACK takes without a copy), so it
    is overwritten either way.
    """
    try:
        factor = scipy.linalg.cho_factor(matrix.T, overwrite_a=True, check_finite=False)
    except np.linalg.LinAlgError:
        return None
    return np.asarray(scipy.linalg.cho_solve(factor, rhs, check_finite=False))


def _load(matrix: np.ndarray, regularization: float) -> None:
    """museval's ``+ eps I``, plus the opt-in loading relative to the diagonal (in place)."""
    diag = np.diag_indices_from(matrix)
    matrix[diag] += EPS + regularization * matrix[diag]


def _schur_solve(
    ref_corr: np.ndarray, rhs: np.ndarray, filters_len: int, regularization: float
) -> np.ndarray | None:
    """``G^-1 rhs`` by the block-Toeplitz factorization; None when it is not trustworthy.

    The solution is accepted when its normwise backward error for museval's system
    ``G + eps I`` is at most :data:`BACKWARD_ERROR_TOLERANCE` (museval's LU: about 1e-16).
    Some band-limited references make ``G`` indefinite by rounding (eigenvalues of
    ``-1e-17`` times the largest): then ``G + delta I`` is factored instead, ``delta`` at
    most ``1e-14`` times the largest diagonal entry (below the rounding error of ``G``
    itself), and used to solve the unloaded system with one step of iterative refinement,
    under the same acceptance test.
    """
    nb_rows = ref_corr.shape[0]
    blocks = toeplitz_blocks(ref_corr, filters_len)
    _load(blocks[0], regularization)
    # lag-major order: unknown (lag l, channel a) <-> channel-major row a * L + l
    perm = (np.arange(nb_rows)[None, :] * filters_len + np.arange(filters_len)[:, None]).ravel()
    target = rhs[perm]
    norm = _norm_bound(blocks)
    largest = float(np.max(np.diag(blocks[0])))
    for loading in ROUNDING_LOADINGS:
        loaded = blocks.copy()
        loaded[0] += loading * largest * np.eye(nb_rows)
        try:
            factor = block_toeplitz_cholesky(loaded)
        except NotPositiveDefinite:
            continue
        del loaded
        solution = factor.solve(target)
        for _ in range(2):  # accept, or refine once and check again
            residual = target - block_toeplitz_matvec(blocks, solution)  # unloaded system
            scale = norm * float(np.max(np.abs(solution))) + float(np.max(np.abs(target)))
            if float(np.max(np.abs(residual))) <= BACKWARD_ERROR_TOLERANCE * scale:
                out: np.ndarray = np.empty_like(solution)
                out[perm] = solution
                return out
            solution += factor.solve(residual)
    return None


def _norm_bound(blocks: np.ndarray) -> float:
    """An upper bound of the block-Toeplitz matrix's infinity norm (largest row sum)."""
    sums = np.abs(blocks).sum(axis=2) + np.abs(blocks).sum(axis=1)  # (m, p): rows and columns
    return float(sums.sum(axis=0).max())


def distortion_filters(
    references: np.ndarray,
    estimates: np.ndarray,
    filters_len: int = 512,
    regularization: float = 0.0,
    solver: str = "schur",
) -> DistortionFilters:
    """Estimate museval's v4 projection filters on the whole signal.

    Args:
        references, estimates: ``(nb_sources, nb_samples, nb_channels)``.
        filters_len: taps ``L`` (Default: 512).
        regularization: extra diagonal loading of the Gram matrix, relative to each
            reference channel's energy (0: museval's ``eps`` only). See
            :func:`~unmix.metrics.bss_eval_v4`.
        solver: ``"schur"`` (default) or ``"lu"`` (museval's dense LU throughout).

    Returns:
        the filters ``C`` (all references) and ``C_j`` (own reference) of every estimate.
    """
    nb_src, _, nb_ch = references.shape
    rows = nb_src * nb_ch
    corr = lagged_xcorr([references, estimates], [references], filters_len - 1)
    ref_corr = corr[:rows]
    cross = cross_matrix(corr[rows:], filters_len)

    def dense_all() -> np.ndarray:  # museval's own arithmetic, for ill-posed systems too
        gram = gram_matrix(ref_corr, filters_len)
        _load(gram, regularization)
        return museval_solve(gram, cross)

    def all_refs() -> np.ndarray:
        if solver == "lu":
            return dense_all()
        fast = _schur_solve(ref_corr, cross, filters_len, regularization)
        return dense_all() if fast is None else fast

    def own_ref(j: int) -> np.ndarray:
        sl = slice(j * nb_ch, (j + 1) * nb_ch)
        block = slice(j * nb_ch * filters_len, (j + 1) * nb_ch * filters_len)
        size = nb_ch * filters_len

        def gram() -> np.ndarray:  # in the thread's buffer: one for the four systems
            out = gram_matrix(ref_corr[sl, sl], filters_len, scratch("gram", (size, size), float))
            _load(out, regularization)
            return out

        solution = None if solver == "lu" else cholesky_solve_in_place(gram(), cross[block, sl])
        return museval_solve(gram(), cross[block, sl]) if solution is None else solution

    if nb_src == 1:  # the same system twice: museval's two identical solves agree exactly
        full = all_refs()
        return DistortionFilters(full, full[None].copy())
    tasks = [-1, *range(nb_src)]
    results = list(ordered_map(lambda j: all_refs() if j < 0 else own_ref(j), tasks, nb_threads()))
    return DistortionFilters(results[0], np.stack(results[1:]))
