"""Where the model runs: pick a PyTorch device."""

from __future__ import annotations

import torch

from .choices import DEVICE_HELP as DEVICE_HELP
from .choices import DEVICE_PATTERN as DEVICE_PATTERN
from .choices import parse_device as parse_device
from .errors import UnmixError


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
