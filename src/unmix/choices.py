"""The values of the separation options, checked without PyTorch.

Device names, precisions, the number of shifts and ensemble names and weights are parsed
here so that the command line (and an exported graph run by onnxruntime) need not import
PyTorch to read them; :mod:`unmix.device`, :mod:`unmix.precision`, :mod:`unmix.shifts` and
:mod:`unmix.ensemble` re-export them next to the code that uses them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from .errors import UnmixError

# ---- devices (unmix.device)

#: what ``--device`` accepts: auto, cpu, mps, cuda, cuda:N
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
DEVICE_HELP = "auto, cpu, cuda, cuda:N (the N-th GPU) or mps"


def parse_device(text: str) -> str:
    """``text`` (lower case) if it names a device :func:`unmix.device.pick_device` knows (``cuda:1``
    included); a one-line :class:`~unmix.errors.UnmixError` otherwise. Whether the device
    exists is checked by :func:`~unmix.device.pick_device`."""
    value = text.strip().lower()
    if not DEVICE_PATTERN.fullmatch(value):
        raise UnmixError(f"unknown device {text!r}; use {DEVICE_HELP}")
    return value


# ---- precisions (unmix.precision)

Precision = Literal["fp32", "bf16", "fp16"]

#: the values of ``--precision``, in the order the help lists them
PRECISIONS: tuple[Precision, ...] = ("fp32", "bf16", "fp16")

#: the default: the networks in float32, stems bit-identical to a run without the option
DEFAULT_PRECISION: Precision = "fp32"


def parse_precision(name: str) -> Precision:
    """``name`` (any case) as a :data:`Precision`; a one-line
    :class:`~unmix.errors.UnmixError` for anything else."""
    value = str(name).strip().lower()
    if value not in PRECISIONS:
        raise UnmixError(f"unknown precision {name!r}; use one of {', '.join(PRECISIONS)}")
    return value


# ---- shifts (unmix.shifts)

#: most shifted copies one separation may average
MAX_SHIFTS = 32


def check_shifts(shifts: int) -> int:
    """``shifts`` if it is a whole number in ``[1, MAX_SHIFTS]``.

    Raises:
        UnmixError: anything else.
    """
    if isinstance(shifts, bool) or not isinstance(shifts, int) or not 1 <= shifts <= MAX_SHIFTS:
        raise UnmixError(
            f"shifts must be a whole number from 1 (no shifts) to {MAX_SHIFTS}, got {shifts!r}"
        )
    return shifts


# ---- ensembles (unmix.ensemble)

#: what joins the members of an ensemble in a model name: ``umx-preview+umx-rt-preview``
JOIN = "+"
#: most members one ensemble may have
MAX_MEMBERS = 8

#: per-target weights: ``{target: (w_1, ..., w_M)}``, or one sequence for every target
Weights = Mapping[str, Sequence[float]] | Sequence[float]


def ensemble_parts(model: str | Path) -> list[str]:
    """The members named by ``model``: ``"a+b"`` → ``["a", "b"]``; an existing path or a
    name without ``+`` is one member.

    Raises:
        UnmixError: an empty member (``a++b``) or too many members.
    """
    text = str(model)
    if JOIN not in text or Path(text).exists():
        return [text]
    parts = text.split(JOIN)
    if any(not p.strip() for p in parts):
        raise UnmixError(
            f"model {text!r} has an empty ensemble member: join names or folders with a "
            "single '+', e.g. umx-preview+umx-rt-preview"
        )
    if len(parts) > MAX_MEMBERS:
        raise UnmixError(f"an ensemble has at most {MAX_MEMBERS} members, got {len(parts)}")
    return [p.strip() for p in parts]


def parse_weights(texts: Sequence[str]) -> Weights:
    """``--ensemble-weights`` → weights: ``["2,1"]`` (every target) or
    ``["vocals=2,1", "bass=1,3"]`` (those targets; the others weigh their members equally).

    Raises:
        UnmixError: a malformed entry, a target given twice, or a mix of both forms.
    """
    by_target: dict[str, tuple[float, ...]] = {}
    everywhere: tuple[float, ...] | None = None
    for text in texts:
        target, sep, numbers = text.rpartition("=")
        try:
            values = tuple(float(v) for v in numbers.split(","))
        except ValueError:
            raise UnmixError(
                f"bad --ensemble-weights {text!r}: expected numbers per member, e.g. 2,1 or "
                "vocals=2,1"
            ) from None
        if not sep:
            everywhere = values
        elif target in by_target or not target:
            raise UnmixError(f"bad --ensemble-weights {text!r}: name each target once")
        else:
            by_target[target] = values
    if everywhere is not None and by_target:
        raise UnmixError(
            "--ensemble-weights: give either one list for every target (2,1) or lists per "
            "target (vocals=2,1 bass=1,3), not both"
        )
    return everywhere if everywhere is not None else by_target
