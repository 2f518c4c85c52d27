"""Ensembles: several separators as one, their stems averaged (weights per target optional).

An :class:`Ensemble` is a :class:`~unmix.separator.Separator`, so the engine (segments,
streaming, files, records) drives it unchanged. ``--model a+b`` builds one
(:func:`unmix.hub.loading.load_separator`). Members must run at the same sample rate and
separate the same targets (choose common ones with ``--targets``); they may differ in
everything else, STFT sizes included: segment plans align to every member's hop
(:attr:`Ensemble.hops`), and shifts are fractions of the hops' common divisor.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .choices import JOIN as JOIN
from .choices import MAX_MEMBERS as MAX_MEMBERS
from .choices import Weights as Weights
from .choices import ensemble_parts as ensemble_parts
from .choices import parse_weights as parse_weights
from .errors import UnmixError
from .separator import Separator
from .shifts import check_shifts


def _check_members(members: Sequence[Separator], names: Sequence[str]) -> None:
    """One-line errors for members that cannot be averaged."""
    first, label = members[0], names[0]
    for member, name in zip(members[1:], names[1:], strict=True):
        if member.sample_rate != first.sample_rate:
            raise UnmixError(
                f"ensemble members must share a sample rate: {label} runs at "
                f"{first.sample_rate} Hz, {name} at {member.sample_rate} Hz"
            )
        if set(member.output_names) != set(first.output_names):
            raise UnmixError(
                f"ensemble members must separate the same targets: {label} has "
                f"{', '.join(first.targets)}, {name} has {', '.join(member.targets)}; choose "
                "common ones with --targets"
            )
        if member.wiener != first.wiener:
            raise UnmixError(f"ensemble members {label} and {name} have other Wiener settings")


def _weight_matrix(weights: Weights | None, outputs: Sequence[str], nb: int) -> Tensor:
    """``(J', M)`` float64 weights, each row summing to one; the residual's row is uniform."""
    rows = torch.full((len(outputs), nb), 1.0 / nb, dtype=torch.float64)
    if weights is None:
        return rows
    targets = [o for o in outputs if o != "residual"]
    given = weights if isinstance(weights, Mapping) else dict.fromkeys(targets, weights)
    for target, values in given.items():
        if target not in targets:
            raise UnmixError(
                f"ensemble weights for {target!r}: not a target of this ensemble "
                f"({', '.join(targets)})"
            )
        w = [float(v) for v in values]
        if len(w) != nb or not all(math.isfinite(v) and v >= 0 for v in w) or sum(w) <= 0:
            raise UnmixError(
                f"ensemble weights for {target}: need {nb} numbers >= 0 (one per member, "
                f"not all 0), got {','.join(map(str, values))}"
            )
        rows[outputs.index(target)] = torch.tensor(w, dtype=torch.float64) / sum(w)
    return rows


class Ensemble(Separator):
    """Average the stems of several separators (weights per target optional).

    Args:
        members: loaded separators (same rate, same targets and Wiener settings), each
            with ``shifts=1``; outputs follow the first member's order.
        weights: per target ``(w_1, ..., w_M)`` (normalised to sum to one), or one such
            sequence for all targets; unnamed targets weigh the members equally. The
            ``residual`` output is what the averaged targets leave of the members' mean
            mixture, so the stems still add up as each member's do.
        shifts: time-shifted copies averaged around the whole ensemble (:mod:`unmix.shifts`).
        names: what to call the members in messages and records (Default: ``member1``...).

    Raises:
        UnmixError: no members, members that do not fit together, bad weights or shifts.
    """

    #: ``(J', M)`` weights of the members per output, rows summing to one
    weights: Tensor

    def __init__(
        self,
        members: Sequence[Separator],
        weights: Weights | None = None,
        shifts: int = 1,
        names: Sequence[str] | None = None,
    ) -> None:
        nn.Module.__init__(self)
        if not members:
            raise UnmixError("an ensemble needs at least one member")
        names = (
            list(names) if names is not None else [f"member{k + 1}" for k in range(len(members))]
        )
        if len(names) != len(members) or any(m.shifts != 1 for m in members):
            raise ValueError("one name per member, and members without shifts")
        _check_members(members, names)
        first = members[0]
        self.members = nn.ModuleList(members)  # registered: .to(), .freeze() reach them
        self._members: tuple[Separator, ...] = tuple(members)
        self.names = tuple(names)
        self.wiener = first.wiener
        self.precision = first.precision  # loaded alike (load_separator), recorded once
        self.targets = first.targets
        widest = max(members, key=lambda m: m.config.n_fft)  # short audio is padded to it
        self.config = widest.config.with_(targets=first.targets)
        self.shifts = check_shifts(shifts)
        self._order = [[m.output_names.index(n) for n in first.output_names] for m in members]
        self.register_buffer(
            "weights", _weight_matrix(weights, first.output_names, len(members)), persistent=False
        )
        self._uniform = bool((self.weights == self.weights[0, 0]).all())

    @property
    def hops(self) -> tuple[int, ...]:
        """Every member's STFT hop."""
        return tuple(h for m in self._members for h in m.hops)

    def settings_record(self) -> dict[str, Any]:
        """Shifts, the members and (when not equal) the weights, for the outputs' record."""
        record = {**super().settings_record(), "ensemble": list(self.names)}
        if not self._uniform:
            record["ensemble_weights"] = {
                name: [round(float(w), 12) for w in row]
                for name, row in zip(self.output_names, self.weights, strict=True)
            }
        return record

    def check_single(self, what: str) -> None:
        """Refuse: an ensemble runs several models."""
        raise UnmixError(
            f"{what} runs one model; ensembles ({JOIN.join(self.names)}) are for unmix "
            "separate, evaluate and serve"
        )

    def separate_once(self, audio: Tensor) -> Tensor:
        """Weighted mean of the members' stems: ``(S, C, T)`` → ``(S, J', C, T)``."""
        total: Tensor | None = None
        mixture: Tensor | None = None  # members' mean sum of stems (for the residual)
        rebalance = self.residual and not self._uniform
        for member, order, column in zip(self._members, self._order, self.weights.T, strict=True):
            stems = member(audio)[:, order]
            weighted = stems * column.to(stems.device, stems.dtype)[:, None, None]
            total = weighted if total is None else total.add_(weighted)
            if rebalance:
                part = stems.sum(dim=1) / len(self.members)
                mixture = part if mixture is None else mixture.add_(part)
        if total is None:
            raise ValueError("no members")
        if mixture is not None:
            total[:, -1] = mixture - total[:, :-1].sum(dim=1)
        return total
