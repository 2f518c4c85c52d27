"""The causal multichannel Wiener filter: EM with running spatial covariances.

The offline filter (:mod:`unmix.filtering`) estimates one spatial covariance ``R_j(f)`` per
source from *all* frames of a window, so every output frame depends on the future. Here
``R_j`` at frame ``n`` comes from frames ``<= n`` only, as an exponentially weighted
running average with forgetting factor ``λ = exp(-hop / (memory · rate))``::

    A_j(n, f) = λ A_j(n-1, f) + y_j(n, f) y_j(n, f)ᴴ       (C × C, Hermitian)
    B_j(n, f) = λ B_j(n-1, f) + v_j(n, f)                  v_j = mean_c |y_jc|²
    R_j(n, f) = A_j(n, f) / (eps + B_j(n, f))
    y_j ← v_j R_j (√eps I + Σ_k v_k R_k)⁻¹ x               (one EM iteration)

``A`` and ``B`` (one pair per EM iteration) are the filter's whole state; they are carried
from one call to the next, so any grouping of the frames gives the same result. With
``λ = 1`` (``memory = inf``) the estimate of the last frame equals the offline EM over all
frames seen. ``niter = 0`` is frame-local (the model magnitudes with the mixture phase, or
ratio masks with ``softmask``) and needs no state. Unlike the offline filter the mixture is
not rescaled by its peak (that peak would come from the future); only the regulariser
``eps`` sees the difference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import UnmixError
from ..filtering import EPS, WienerSettings, residual_of

#: most EM iterations the causal filter runs (each one carries its own covariances)
MAX_CAUSAL_NITER = 3


@dataclass(frozen=True)
class CausalWiener:
    """Settings of the causal post-filter.

    Attributes:
        niter: EM iterations, 0..:data:`MAX_CAUSAL_NITER`.
        softmask: start from ratio masks instead of magnitudes.
        residual: add a ``residual`` source (the mixture minus the targets).
        memory: time constant of the running covariances in seconds (``inf``: never forget).
        eps: regulariser.
    """

    niter: int = 1
    softmask: bool = False
    residual: bool = False
    memory: float = 4.0
    eps: float = EPS

    def __post_init__(self) -> None:
        if isinstance(self.niter, bool) or not 0 <= self.niter <= MAX_CAUSAL_NITER:
            raise UnmixError(
                f"the causal Wiener filter runs 0..{MAX_CAUSAL_NITER} EM iterations, "
                f"got niter={self.niter}"
            )
        if not (self.memory > 0):  # also refuses NaN
            raise UnmixError(f"Wiener memory must be > 0 seconds, got {self.memory}")

    @classmethod
    def from_settings(cls, settings: WienerSettings, memory: float = 4.0) -> CausalWiener:
        """The causal counterpart of offline settings (``niter``, ``softmask``, ``residual``)."""
        return cls(settings.niter, settings.softmask, settings.residual, memory, settings.eps)

    def forgetting(self, n_hop: int, sample_rate: int) -> float:
        """``λ`` per frame."""
        return 1.0 if math.isinf(self.memory) else math.exp(-n_hop / (self.memory * sample_rate))


def initial_state(
    settings: CausalWiener, nb_sources: int, nb_channels: int, nb_bins: int
) -> tuple[Tensor, ...]:
    """Zero accumulators: per iteration ``A (J', F, C, C)`` complex, then ``B (J', F)``."""
    out: list[Tensor] = []
    for _ in range(settings.niter):
        out.append(torch.zeros(nb_sources, nb_bins, nb_channels, nb_channels, dtype=torch.cfloat))
        out.append(torch.zeros(nb_sources, nb_bins))
    return tuple(out)


def initial_estimates(V: Tensor, mix: Tensor, settings: CausalWiener) -> Tensor:
    """Frame-local estimates ``(J', C, N, F)`` from magnitudes ``V (J, 1 or C, N, F)``.

    Without ``softmask``: ``V`` with the mixture phase; with it: ratio masks ``V / ΣV`` times
    the mixture. The residual is the mixture's magnitude (or 1) minus the others.
    """
    C = mix.shape[0]
    if settings.softmask:
        a = V / (settings.eps + V.sum(0, keepdim=True))
        rest = residual_of(1.0, a)
        carrier = mix
    else:
        mag = mix.abs()
        carrier = torch.where(mag > 0, mix / mag.clamp_min(torch.finfo(mag.dtype).tiny), 1.0)
        a, rest = V, residual_of(mag, V)
    if settings.residual:
        a = torch.cat([a.expand(-1, C, -1, -1), rest.expand(1, C, -1, -1)])
    return a * carrier


def causal_wiener(
    V: Tensor, mix: Tensor, settings: CausalWiener, lam: float, state: tuple[Tensor, ...]
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Filter the next frames causally.

    Args:
        V: model magnitudes ``(J, 1 or C, N, F)``.
        mix: complex mixture ``(C, N, F)``, C = 1 or 2.
        settings: the filter settings.
        lam: forgetting factor per frame (:meth:`CausalWiener.forgetting`).
        state: accumulators from :func:`initial_state` or the previous call.

    Returns:
        complex estimates ``(J', C, N, F)`` and the new state (the old one is not modified).
    """
    y = initial_estimates(V, mix, settings)
    new_state: list[Tensor] = []
    for k in range(settings.niter):
        y, A, B = _em_step(y, mix, lam, state[2 * k], state[2 * k + 1], settings.eps)
        new_state += [A, B]
    return y, tuple(new_state)


def _em_step(
    y: Tensor, mix: Tensor, lam: float, A: Tensor, B: Tensor, eps: float
) -> tuple[Tensor, Tensor, Tensor]:
    """One causal EM iteration over ``N`` frames; returns ``y`` and the last ``A``, ``B``."""
    C, N = mix.shape[0], mix.shape[1]
    v = (y.real.square() + y.imag.square()).mean(1)  # (J, N, F)
    outer = torch.einsum("jcnf,jdnf->jnfcd", y, y.conj())  # (J, N, F, C, C)
    As, Bs = [], []
    for n in range(N):  # the recursion; each frame's sums only see frames <= n
        A = lam * A + outer[:, n]
        B = lam * B + v[:, n]
        As.append(A)
        Bs.append(B)
    R = torch.stack(As, 1) / (eps + torch.stack(Bs, 1))[..., None, None]  # (J, N, F, C, C)
    eye = torch.eye(C, dtype=mix.dtype)
    sigma = eps**0.5 * eye + torch.einsum("jnf,jnfcd->nfcd", v.to(mix.dtype), R)
    z = _solve(sigma, mix.permute(1, 2, 0))  # (N, F, C)
    out = v[:, None] * torch.einsum("jnfcd,nfd->jcnf", R, z)
    return out, A, B


def _solve(cov: Tensor, x: Tensor) -> Tensor:
    """``cov⁻¹ x`` for ``cov (..., C, C)``, ``x (..., C)``, C = 1 or 2 (closed form)."""
    if cov.shape[-1] == 1:
        return x / cov[..., 0]
    a, b, c, d = cov[..., 0, 0], cov[..., 0, 1], cov[..., 1, 0], cov[..., 1, 1]
    inv_det = 1.0 / (a * d - b * c)
    x0, x1 = x[..., 0], x[..., 1]
    return torch.stack([(d * x0 - b * x1) * inv_det, (a * x1 - c * x0) * inv_det], -1)
