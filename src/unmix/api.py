"""High-level functions: array or file in, named stems out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from . import audio as audio_io
from .errors import AudioError
from .loading import load_separator
from .registry import DEFAULT_MODEL
from .separator import Separator


def _as_channels_first(audio: np.ndarray | torch.Tensor) -> np.ndarray:
    """Accept ``(nb_timesteps,)``, ``(nb_channels, nb_timesteps)`` or ``(nb_timesteps, nb_channels)``."""
    arr = audio.detach().cpu().numpy() if isinstance(audio, torch.Tensor) else np.asarray(audio)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise AudioError(f"audio must be 1-D or 2-D (channels, samples), got shape {arr.shape}")
    if arr.shape[0] > arr.shape[1]:
        arr = arr.T
    if arr.shape[0] > 2:
        raise AudioError(
            f"audio has {arr.shape[0]} channels; unmix separates mono or stereo audio: "
            "downmix it to stereo first"
        )
    if arr.shape[1] == 0:
        raise AudioError("audio is empty (0 samples)")
    if not np.isfinite(arr).all():
        raise AudioError("audio holds NaN or infinite samples")
    return np.ascontiguousarray(arr, dtype=np.float32)


def separate_array(
    separator: Separator, audio: np.ndarray, sample_rate: int
) -> dict[str, np.ndarray]:
    """Separate ``(nb_channels, nb_timesteps)`` audio at ``sample_rate`` with a loaded separator.

    The audio is resampled to the model rate and the stems back to ``sample_rate``; every
    stem has the input's shape.

    Returns:
        ``{name: (nb_channels, nb_timesteps) float32}`` in :attr:`Separator.output_names` order.
    """
    x = _as_channels_first(audio)
    model_rate = separator.sample_rate
    mix = audio_io.resample(x, sample_rate, model_rate)
    device = next(iter(separator.parameters()), torch.empty(0)).device
    with torch.inference_mode():
        stems = separator(torch.from_numpy(mix)[None].to(device))[0].cpu().numpy()
    out: dict[str, np.ndarray] = {}
    for name, stem in zip(separator.output_names, stems, strict=True):
        y = audio_io.resample(stem, model_rate, sample_rate)
        y = _fit_length(y, x.shape[1])
        out[name] = y
    return out


def _fit_length(y: np.ndarray, length: int) -> np.ndarray:
    """Pad or trim the (at most a few samples of) resampling slack."""
    if y.shape[1] >= length:
        return y[:, :length]
    return np.pad(y, ((0, 0), (0, length - y.shape[1])))


def separate(
    audio: np.ndarray | torch.Tensor | str | Path,
    sample_rate: int | None = None,
    model: str | Path | Separator = DEFAULT_MODEL,
    targets: list[str] | None = None,
    niter: int = 1,
    softmask: bool = False,
    residual: bool = False,
    wiener_win_len: int | None = 300,
    device: str | None = None,
) -> dict[str, np.ndarray]:
    """Separate a song into stems.

    Args:
        audio: a path to any audio file, or samples shaped ``(nb_timesteps,)``,
            ``(nb_channels, nb_timesteps)`` or ``(nb_timesteps, nb_channels)``.
        sample_rate: rate of ``audio`` (required for arrays).
        model: registry name, model folder, or an already loaded :class:`Separator`.
        targets, niter, softmask, residual, wiener_win_len, device: see
            :func:`unmix.load_separator`.

    Returns:
        ``{target: (nb_channels, nb_timesteps) float32}`` at the input rate and length.

    Example:
        >>> stems = unmix.separate("song.mp3")            # doctest: +SKIP
        >>> stems["vocals"].shape                         # doctest: +SKIP
        (2, 8820000)
    """
    if isinstance(audio, str | Path):
        data, rate = audio_io.read(audio)
    else:
        if sample_rate is None:
            raise AudioError("sample_rate is required when audio is an array")
        data, rate = _as_channels_first(audio), int(sample_rate)
    sep = (
        model
        if isinstance(model, Separator)
        else load_separator(
            model,
            targets=targets,
            niter=niter,
            softmask=softmask,
            residual=residual,
            wiener_win_len=wiener_win_len,
            device=device,
        )
    )
    return separate_array(sep, data, rate)
