"""unmix: music source separation with Open-Unmix and CrossNet-UMX on PyTorch.

Quick start::

    import unmix
    stems = unmix.separate("song.wav")          # {"vocals": (C, T) array, ...}

See the README for the CLI, the model zoo and the training and evaluation tools.
"""

from .api import separate
from .config import CONFIGS, ModelConfig
from .errors import AudioError, UnmixError, WeightsError
from .filtering import wiener
from .loading import load_separator, save_model
from .model import OpenUnmix
from .registry import list_models
from .separator import Separator
from .transforms import ISTFT, STFT

__version__ = "0.1.0"

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
