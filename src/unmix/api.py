"""The public facade: :func:`separate` for arrays, tensors and paths.

The work happens in :mod:`unmix.engine` (streaming, segments, files, batches), re-exported
here: :func:`separate_array`, :func:`separate_file`, :func:`separate_files`,
:func:`iter_separate`, :class:`FileReport`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .engine import (
    BatchResult,
    FileReport,
    OutputOptions,
    iter_separate,
    separate_array,
    separate_file,
    separate_files,
    separate_path,
)
from .errors import AudioError
from .filtering import WienerSettings
from .hub.loading import load_separator
from .hub.registry import DEFAULT_MODEL
from .separator import Separator

__all__ = [
    "BatchResult",
    "FileReport",
    "OutputOptions",
    "iter_separate",
    "separate",
    "separate_array",
    "separate_file",
    "separate_files",
]


def separate(
    audio: np.ndarray | torch.Tensor | str | Path,
    sample_rate: int | None = None,
    model: str | Path | Separator = DEFAULT_MODEL,
    targets: Sequence[str] | None = None,
    wiener: WienerSettings | None = None,
    device: str | torch.device | None = None,
    shifts: int = 1,
    precision: str = "fp32",
) -> dict[str, np.ndarray]:
    """Separate a song into stems.

    Args:
        audio: a path to any audio file, or samples shaped ``(nb_timesteps,)``,
            ``(nb_channels, nb_timesteps)`` or ``(nb_timesteps, nb_channels)``.
        sample_rate: rate of ``audio`` (required for arrays).
        model: registry name, model folder, or an already loaded :class:`Separator`.
        targets, wiener, device, shifts, precision: see :func:`unmix.load_separator` (not
            used when ``model`` is a :class:`Separator`); ``model="a+b"`` averages an ensemble;
            ``precision="bf16"`` runs the networks in bfloat16 (:mod:`unmix.precision`).

    Returns:
        ``{target: (nb_channels, nb_timesteps) float32}`` at the input rate and length.

    Example:
        >>> stems = unmix.separate("song.mp3")            # doctest: +SKIP
        >>> stems["vocals"].shape                         # doctest: +SKIP
        (2, 8820000)
        >>> unmix.separate("song.mp3", wiener=unmix.WienerSettings(niter=0))  # doctest: +SKIP
    """
    if not isinstance(audio, str | Path) and sample_rate is None:
        raise AudioError("sample_rate is required when audio is an array")
    sep = (
        model
        if isinstance(model, Separator)
        else load_separator(
            model,
            targets=targets,
            wiener=wiener,
            device=device,
            shifts=shifts,
            precision=precision,
        )
    )
    if not isinstance(audio, str | Path):
        return separate_array(sep, audio, int(sample_rate or 0))
    return separate_path(sep, audio)
