"""unmix: music source separation with Open-Unmix and CrossNet-UMX on PyTorch.

Quick start::

    import unmix
    stems = unmix.separate("song.wav")          # {"vocals": (C, T) array, ...}

See the README for the CLI, the model zoo and the training and evaluation tools.

The names below are imported on first use, so that ``import unmix.metrics`` (numpy only)
or ``unmix --help`` does not pay for loading PyTorch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import AudioError, UnmixError, WeightsError

if TYPE_CHECKING:
    from .api import separate
    from .config import CONFIGS, ModelConfig
    from .filtering import wiener
    from .loading import load_separator, save_model
    from .model import OpenUnmix
    from .registry import list_models
    from .separator import Separator
    from .transforms import ISTFT, STFT

__version__ = "0.1.0"

_LAZY = {
    "separate": "api",
    "CONFIGS": "config",
    "ModelConfig": "config",
    "wiener": "filtering",
    "load_separator": "loading",
    "save_model": "loading",
    "OpenUnmix": "model",
    "list_models": "registry",
    "Separator": "separator",
    "ISTFT": "transforms",
    "STFT": "transforms",
}

__all__ = [
    "CONFIGS",
    "ISTFT",
    "STFT",
    "AudioError",
    "ModelConfig",
    "OpenUnmix",
    "Separator",
    "UnmixError",
    "WeightsError",
    "__version__",
    "list_models",
    "load_separator",
    "save_model",
    "separate",
    "wiener",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'unmix' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
