"""Where the model runs: pick a PyTorch device."""

from __future__ import annotations

import re

import torch

from .errors import UnmixError

#: what ``--device`` accepts: auto, cpu, mps, cuda, cuda:N
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
DEVICE_HELP = "auto, cpu, cuda, cuda:N (the N-th GPU) or mps"


def parse_device(text: str) -> str:
    """``text`` (lower case) if it names a device :func:`pick_device` knows (``cuda:1``
    included); a one-line :class:`~unmix.errors.UnmixError` otherwise. Whether the device
    exists is checked by :func:`pick_device`."""
    value = text.strip().lower()
    if not DEVICE_PATTERN.fullmatch(value):
        raise UnmixError(f"unknown device {text!r}; use {DEVICE_HELP}")
    return value


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else CUDA, then Apple MPS, then CPU (``None`` or ``"auto"``).

    ``cuda:N`` picks the N-th CUDA GPU (``cuda`` alone: the current one, normally 0).

    Raises:
        UnmixError: a device that is unknown, or asked for but not available.
    """
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise UnmixError(f"unknown device {str(device)!r}; use {DEVICE_HELP}") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UnmixError(
                f"device {str(device)!r} was asked for but no CUDA GPU is available; "
                "use --device cpu"
            )
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise UnmixError(
                f"device {str(device)!r} was asked for but this machine has {count} CUDA "
                f"GPU(s), numbered 0 to {count - 1}; use one of those"
            )
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise UnmixError(
            "device 'mps' was asked for but Apple MPS is not available; use --device cpu"
        )
    return dev
