"""CrossNet-Open-Unmix (X-UMX): one Open-Unmix branch per target, joined by two averages.

Sawata et al., "All for One and One for All: Improving Music Separation by Bridging
Networks", ICASSP 2021. Every branch is a complete :class:`~unmix.models.umx.OpenUnmix`
(same parameter names and shapes, so a branch's state dict is a UMX state dict); the
bridges add no parameters:

1. each branch encodes the mixture (:meth:`OpenUnmix.encode`) → ``h1_t``;
2. bridge 1: every branch's LSTM reads the average of all ``h1_t``;
3. each branch concatenates its own ``h1_t`` with its LSTM output → ``s_t``;
4. bridge 2: every branch's decoder (:meth:`OpenUnmix.decode`) reads the average of all
   ``s_t``; the result is a mask applied to the mixture.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from ..errors import UnmixError
from .contract import check_targets
from .umx import Branches, OpenUnmix


class XUMX(Branches):
    """X-UMX for several targets at once.

    Args:
        branches: ``{target: OpenUnmix}``; the averages do not depend on the order.
        outputs: targets to output, in this order (Default: all branches). Every branch
            is still computed: the bridges need all of them.

    The state dict holds ``branches.<target>.<OpenUnmix name>``.
    """

    def __init__(
        self, branches: Mapping[str, OpenUnmix], outputs: Sequence[str] | None = None
    ) -> None:
        if not branches:
            raise UnmixError("X-UMX needs at least one target")
        super().__init__(branches)
        names = tuple(branches)
        self.targets = names if outputs is None else check_targets(outputs, names)
        self._keep = [names.index(t) for t in self.targets]

    def select_targets(self, targets: Sequence[str]) -> XUMX:
        """Output ``targets`` only; all branches still run (shares the weights)."""
        return XUMX({t: self.branch(t) for t in self.branches}, outputs=targets)

    def forward(self, x: Tensor) -> Tensor:
        """Estimate the targets' magnitudes.

        Args:
            x: mixture magnitude ``(nb_samples, nb_channels, nb_bins, nb_frames)``.

        Returns:
            target magnitudes ``(nb_samples, nb_channels, nb_bins, nb_frames, nb_targets)``
            in :attr:`targets` order.
        """
        x = x.permute(3, 0, 1, 2)  # (N, S, C, F)
        mix = x.detach().clone()
        nets = [self.branch(t) for t in self.branches]
        h1 = [net.encode(x) for net in nets]  # each (N, S, Hd)
        cross1 = torch.stack(h1).mean(dim=0)
        skips = [
            torch.cat([h, net.lstm(cross1)[0]], dim=-1) for h, net in zip(h1, nets, strict=True)
        ]
        cross2 = torch.stack(skips).mean(dim=0)  # (N, S, 2 Hd)
        masks = [nets[j].decode(cross2, x.shape[2]) for j in self._keep]  # each (N, S, C, F)
        out = torch.stack(masks, dim=-1) * mix.unsqueeze(-1)  # (N, S, C, F, J)
        return out.permute(1, 2, 3, 0, 4)
