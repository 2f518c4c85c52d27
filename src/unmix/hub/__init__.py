"""Where models come from: registry, download, archives, NNabla import, weight files.

The names below are imported on first use: :mod:`unmix.hub.registry` is read by
``unmix models`` without loading PyTorch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .loading import load_model, load_separator, save_model
    from .registry import DEFAULT_MODEL, list_models

_LAZY = {
    "DEFAULT_MODEL": "registry",
    "list_models": "registry",
    "load_model": "loading",
    "load_separator": "loading",
    "save_model": "loading",
}

__all__ = ["DEFAULT_MODEL", "list_models", "load_model", "load_separator", "save_model"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'unmix.hub' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
