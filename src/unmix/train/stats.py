"""Input statistics of the training mixtures (the network's input normalisation)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch import Tensor

from ..errors import UnmixError
from ..transforms import STFT, magnitude

#: the per-bin standard deviation is floored at this fraction of its largest value
STD_FLOOR = 1e-4


@torch.no_grad()
def input_statistics(
    mixtures: Iterable[np.ndarray], n_fft: int, n_hop: int
) -> tuple[Tensor, Tensor]:
    """Per-bin mean and standard deviation of channel-averaged mixture magnitudes.

    Frames are the samples and bins the features (population statistics, accumulated
    in float64); STFT ``center=False`` as in the training loss. The standard deviation
    is floored at ``STD_FLOOR * max(std)`` so that silent bins do not blow up.

    Args:
        mixtures: whole training mixtures, each ``(nb_channels, nb_timesteps)``.
        n_fft, n_hop: STFT settings.

    Returns:
        ``(mean (F,), std (F,))`` float32 with ``F = n_fft // 2 + 1``.

    Raises:
        UnmixError: when no mixture is long enough for one STFT frame.
    """
    stft = STFT(n_fft, n_hop, center=False)
    bins = n_fft // 2 + 1
    total = torch.zeros(bins, dtype=torch.float64)
    squares = torch.zeros(bins, dtype=torch.float64)
    count = 0
    for mix in mixtures:
        audio = torch.as_tensor(np.asarray(mix, dtype=np.float32))[None]
        if audio.shape[-1] < n_fft:
            continue
        mag = magnitude(stft(audio), mono=True)[0, 0].double()  # (F, N)
        total += mag.sum(-1)
        squares += (mag * mag).sum(-1)
        count += mag.shape[-1]
    if count == 0:
        raise UnmixError(f"no training mixture is longer than one FFT window ({n_fft} samples)")
    mean = total / count
    std = (squares / count - mean * mean).clamp_min(0.0).sqrt()
    std = torch.maximum(std, STD_FLOOR * std.max())
    return mean.float(), std.float()
