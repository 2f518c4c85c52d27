"""Where the model runs: pick a PyTorch device."""

from __future__ import annotations

import torch

from .errors import UnmixError


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else CUDA, then Apple MPS, then CPU (``None`` or ``"auto"``).

    Raises:
        UnmixError: a device that is asked for but not available.
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
        raise UnmixError(f"unknown device {str(device)!r}; use auto, cpu, cuda or mps") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UnmixError(
            "device 'cuda' was asked for but no CUDA GPU is available; use --device cpu"
        )
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise UnmixError(
            "device 'mps' was asked for but Apple MPS is not available; use --device cpu"
        )
    return dev
