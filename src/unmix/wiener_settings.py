"""The Wiener post-filter's options and the residual, without PyTorch.

:class:`WienerSettings` and :func:`residual_of` are re-exported by :mod:`unmix.filtering`
(which holds the filter itself); they live here so that code that only reads the options
or forms a residual of numpy arrays (the engine running an exported graph, the CLI) does
not import PyTorch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, overload

import numpy as np

from .errors import UnmixError

if TYPE_CHECKING:
    from torch import Tensor

EPS = 1e-10
#: upper bound of ``niter`` (each iteration costs about one model pass; 1-3 is typical)
MAX_NITER = 1000


@dataclass(frozen=True)
class WienerSettings:
    """The options of the Wiener post-filter, declared once for the CLI, API and Separator.

    Attributes:
        niter: EM iterations (``>= 0``); 0 keeps the model estimates (with the mixture
            phase, or as ratio masks with ``softmask``).
        softmask: initialise the filter with ratio masks instead of magnitudes.
        residual: add a ``residual`` output: the mixture minus the other estimates.
        wiener_win_len: frames per independent Wiener window (``None``: all frames).
        scale_factor: the mixture is divided by ``max(1, max|x| / scale_factor)`` during EM.
        eps: regulariser of the covariance estimates.

    Raises:
        UnmixError: a value out of range (one line).
    """

    niter: int = 1
    softmask: bool = False
    residual: bool = False
    wiener_win_len: int | None = 300
    scale_factor: float = 10.0
    eps: float = EPS

    def __post_init__(self) -> None:
        win = self.wiener_win_len
        checks = [
            (
                _is_int(self.niter) and 0 <= self.niter <= MAX_NITER,
                f"niter must be in 0..{MAX_NITER}",
            ),
            (win is None or (_is_int(win) and win >= 1), "wiener_win_len must be >= 1 or None"),
            (_positive(self.scale_factor), "scale_factor must be a positive number"),
            (_positive(self.eps), "eps must be a positive number"),
        ]
        for ok, message in checks:
            if not ok:
                raise UnmixError(f"invalid Wiener settings: {message} (got {self})")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


#: the default options (niter 1, no softmask, no residual, 300-frame windows)
DEFAULT_WIENER = WienerSettings()


@overload
def residual_of(mixture: Tensor | float, others: Tensor) -> Tensor: ...
@overload
def residual_of(mixture: np.ndarray, others: np.ndarray) -> np.ndarray: ...
def residual_of(
    mixture: Tensor | np.ndarray | float, others: Tensor | np.ndarray
) -> Tensor | np.ndarray:
    """The residual source, defined once: ``mixture − Σ_j others[j]``.

    Used for the model-rate residual of the Wiener stage (amplitudes or masks) and for the
    output-rate residual of the engine (audio), so that *Σ targets + residual = input*.

    Args:
        mixture: ``(...)``, or a scalar (``1`` for ratio masks).
        others: the other sources stacked on the first axis ``(J, ...)``.

    Returns:
        ``(...)``.
    """
    return mixture - others.sum(0)
