"""Reading and writing weight files safely.

* ``.pth`` (official PyTorch releases): ``torch.load(weights_only=True)``, which
  refuses any pickle that would construct arbitrary objects or run code.
* ``.safetensors``: our own format (plain tensors, no code).

Only plain dense CPU tensors are accepted (no sparse, meta or quantized ones). State
dicts are loaded with ``strict=True`` after dropping exactly the legacy keys of the 2019
releases, so a missing or unexpected key is always reported; a tensor must have a
floating type where the model has one (no int8 or bool weights) and finite values.
"""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from ..errors import WeightsError
from ..fileio import atomic_path

#: Keys of the v1.0.0 module (which owned an STFT) found in the umx/umxhq/umxse files.
LEGACY_KEYS = frozenset({"sample_rate", "stft.window", "transform.0.window"})

WEIGHT_SUFFIXES = (".safetensors", ".pth")


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Read a state dict from ``.pth`` or ``.safetensors`` without executing code.

    Raises:
        WeightsError: unreadable, truncated or unsafe files (one-line message).
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        try:
            return dict(load_file(str(path)))
        except (SafetensorError, OSError, ValueError) as exc:
            raise WeightsError(
                f"cannot read {path}: not a valid safetensors file ({exc}); re-download or re-export it"
            ) from exc
    try:
        with warnings.catch_warnings():
            # torch warns about the pickle protocol of foreign files before refusing them
            warnings.filterwarnings("ignore", message=".*pickle protocol.*", category=UserWarning)
            # torch's own deprecation notes while rebuilding quantized storages (refused below)
            warnings.filterwarnings("ignore", message=".*TypedStorage is deprecated.*")
            data = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsafe content"
        raise WeightsError(
            f"refusing to load {path}: it is not a plain tensor file (it is corrupt, or holds "
            f"objects whose loading could run code: {first[:160]}); use a weights file from a "
            "trusted source"
        ) from exc
    except Exception as exc:  # torch.load raises many types on corrupt input
        raise WeightsError(
            f"cannot read {path}: corrupt or truncated weights file "
            f"({type(exc).__name__}: {str(exc).strip()[:160]})"
        ) from exc
    if (
        isinstance(data, Mapping)
        and "state_dict" in data
        and isinstance(data["state_dict"], Mapping)
    ):
        data = data["state_dict"]
    if not isinstance(data, Mapping) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in data.items()
    ):
        raise WeightsError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    for name, tensor in data.items():
        _check_plain(tensor, name, path)
    return dict(data)


def _check_plain(tensor: Tensor, name: str, path: Path) -> None:
    """Refuse sparse, meta, quantized and other non-plain tensors, naming them."""
    kind = ""
    if tensor.layout != torch.strided:
        kind = f"a {str(tensor.layout).removeprefix('torch.')} tensor"
    elif tensor.is_meta:
        kind = "a meta tensor (it has no values)"
    elif tensor.is_quantized:
        kind = "a quantized tensor"
    elif tensor.device.type != "cpu":
        kind = f"a tensor on {tensor.device.type}"
    if kind:
        raise WeightsError(
            f"{path}: {name[:80]!r} is {kind}; weights must be plain dense float tensors "
            "(re-export the state dict with torch.save or unmix convert)"
        )


def strip_legacy(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Drop the three known legacy keys of the 2019 files, keep everything else."""
    return {k: v for k, v in state.items() if k not in LEGACY_KEYS}


def load_into(module: nn.Module, state: Mapping[str, Tensor], source: str) -> None:
    """``load_state_dict(strict=True)`` with a readable error.

    Args:
        module: network to fill.
        state: state dict (legacy keys are dropped first).
        source: file name used in the error message.

    Raises:
        WeightsError: missing/unexpected keys or shape mismatches, naming them.
    """
    state = strip_legacy(state)
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(
        f"{k} {tuple(state[k].shape)} (expected {tuple(own[k].shape)})"
        for k in set(own) & set(state)
        if tuple(own[k].shape) != tuple(state[k].shape)
    )
    problems = []
    if missing:
        problems.append(f"missing keys {_short(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_short(unexpected)}")
    if wrong:
        problems.append(f"wrong shapes {_short(wrong)}")
    if problems:
        raise WeightsError(
            f"weights in {source} do not fit the model configuration: {'; '.join(problems)}; "
            "check the model config (hidden size, n_fft, channels, architecture)"
        )
    for name in own:
        _check_values(state[name], own[name], name, source)
    module.load_state_dict(state, strict=True)


def _check_values(tensor: Tensor, like: Tensor, name: str, source: str) -> None:
    """A float tensor for a float parameter, with finite values; an integer for a counter."""
    wrong = like.is_floating_point() != tensor.is_floating_point()
    if wrong or tensor.is_complex() or tensor.dtype == torch.bool:
        raise WeightsError(
            f"weights in {source}: {name!r} has the type {str(tensor.dtype).removeprefix('torch.')}"
            f", expected {'a floating' if like.is_floating_point() else 'an integer'} type; "
            "the file is corrupt or not an unmix/Open-Unmix weights file"
        )
    if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
        raise WeightsError(
            f"weights in {source}: {name!r} holds NaN or infinite values; the model would "
            "give NaN stems (re-download or re-train it)"
        )


def _short(items: list[str], limit: int = 4) -> str:
    shown = ", ".join(items[:limit])
    return f"[{shown}{', …' if len(items) > limit else ''}] ({len(items)})"


def save_state_dict(state: Mapping[str, Tensor], path: str | Path) -> None:
    """Write a state dict as safetensors, atomically (contiguous CPU copies)."""
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    with atomic_path(Path(path), suffix=".safetensors.part") as tmp:
        save_file(tensors, str(tmp))
