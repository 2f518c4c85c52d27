"""The model contract: what every separation network offers.

A separation model maps a mixture magnitude ``(S, C, F, N)`` (samples, channels, bins,
frames) to one magnitude per target ``(S, C, F, N, J)``, ``J = len(model.targets)``.
Everything downstream (the :class:`~unmix.separator.Separator`, training, saving) uses
only what is declared here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from torch import Tensor, nn

from ..errors import UnmixError

if TYPE_CHECKING:
    from typing import Self

    from ..config import ModelConfig


class SeparationModel(nn.Module):
    """Base class of every separation network.

    Attributes:
        targets: output names, in output order (the last dimension of :meth:`forward`).
    """

    targets: tuple[str, ...]

    @classmethod
    def from_config(cls, config: ModelConfig) -> Self:
        """An untrained model for ``config`` (its targets, STFT and network sizes)."""
        raise NotImplementedError

    def set_input_statistics(self, mean: Tensor, std: Tensor) -> None:
        """Store the per-bin dataset mean and standard deviation ``(F,)`` of the inputs."""
        raise NotImplementedError

    def select_targets(self, targets: Sequence[str]) -> SeparationModel:
        """A model with only ``targets`` as outputs, in that order (shares the weights).

        Raises:
            UnmixError: a name that is not one of :attr:`targets`.
        """
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        """``(S, C, F, N)`` mixture magnitude → ``(S, C, F, N, J)`` target magnitudes."""
        raise NotImplementedError

    def freeze(self) -> Self:
        """Disable gradients and switch to evaluation mode."""
        for p in self.parameters():
            p.requires_grad = False
        return self.eval()


def check_targets(wanted: Sequence[str], known: Sequence[str]) -> tuple[str, ...]:
    """``wanted`` as a tuple, after checking each name is in ``known`` (once).

    Raises:
        UnmixError: unknown, repeated or no names, naming the known ones.
    """
    unknown = [t for t in wanted if t not in known]
    if unknown:
        raise UnmixError(f"unknown targets {unknown}; this model has {list(known)}")
    if not wanted or len(set(wanted)) != len(wanted):
        raise UnmixError(f"targets must be distinct names of {list(known)}, got {list(wanted)}")
    return tuple(wanted)
