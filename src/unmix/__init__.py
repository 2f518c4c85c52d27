"""unmix: music source separation with Open-Unmix and CrossNet-UMX on PyTorch.

Quick start::

    import unmix
    stems = unmix.separate("song.wav")          # {"vocals": (C, T) array, ...}

See the README for the CLI, the model zoo and the training and evaluation tools.

The names below are imported on first use, so that ``import unmix.metrics`` (numpy only)
or ``unmix --help`` does not pay for loading PyTorch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import AudioError, UnmixError, WeightsError
from .lazy import lazy_attributes

if TYPE_CHECKING:
    from .api import OutputOptions, separate, separate_files
    from .config import CONFIGS, ModelConfig
    from .filtering import WienerSettings, wiener
    from .hub.loading import load_model, load_separator, save_model
    from .hub.registry import list_models
    from .models.architectures import ARCHITECTURES, get_architecture
    from .models.contract import SeparationModel
    from .models.umx import UMX, OpenUnmix
    from .models.xumx import XUMX
    from .realtime.stream import StreamSeparator
    from .separator import Separator
    from .transforms import ISTFT, STFT

__version__ = "0.1.0"

_LAZY = {
    "separate": "api",
    "separate_files": "api",
    "OutputOptions": "api",
    "CONFIGS": "config",
    "ModelConfig": "config",
    "WienerSettings": "filtering",
    "wiener": "filtering",
    "load_model": "hub.loading",
    "load_separator": "hub.loading",
    "save_model": "hub.loading",
    "list_models": "hub.registry",
    "ARCHITECTURES": "models.architectures",
    "get_architecture": "models.architectures",
    "SeparationModel": "models.contract",
    "OpenUnmix": "models.umx",
    "UMX": "models.umx",
    "XUMX": "models.xumx",
    "Separator": "separator",
    "StreamSeparator": "realtime.stream",
    "ISTFT": "transforms",
    "STFT": "transforms",
}

__all__ = [
    "ARCHITECTURES",
    "CONFIGS",
    "ISTFT",
    "STFT",
    "UMX",
    "XUMX",
    "AudioError",
    "ModelConfig",
    "OpenUnmix",
    "OutputOptions",
    "SeparationModel",
    "Separator",
    "StreamSeparator",
    "UnmixError",
    "WeightsError",
    "WienerSettings",
    "__version__",
    "get_architecture",
    "list_models",
    "load_model",
    "load_separator",
    "save_model",
    "separate",
    "separate_files",
    "wiener",
]


__getattr__ = lazy_attributes(__name__, _LAZY)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
