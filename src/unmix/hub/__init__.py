"""Where models come from: registry, download, archives, NNabla import, weight files.

The names below are imported on first use: :mod:`unmix.hub.registry` is read by
``unmix models`` without loading PyTorch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_attributes

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


__getattr__ = lazy_attributes(__name__, _LAZY)
