"""Source augmentations, applied to each source before mixing.

Random values are drawn by the sampler from an explicit generator and stored in
an :class:`Augment`, so applying an augmentation is a pure function and an
excerpt is fully determined by ``(seed, epoch, index)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import UnmixError

#: known augmentation names, in the order they are drawn and applied
AUGMENTATIONS = ("gain", "channelswap", "speed")

#: uniform gain range of the ``gain`` augmentation, ``[low, high)``
GAIN_RANGE = (0.25, 1.25)

#: uniform playback-rate range of the ``speed`` augmentation (tempo and pitch together),
#: ``[low, high)``; drawn after the others, so runs without it draw what they always drew
SPEED_RANGE = (0.9, 1.1)


@dataclass(frozen=True)
class Augment:
    """Drawn augmentation of one source excerpt.

    Attributes:
        gain: linear gain.
        swap: swap the left and right channels.
        speed: playback rate (``speed`` times faster: :func:`resample`).
    """

    gain: float = 1.0
    swap: bool = False
    speed: float = 1.0


def check_names(names: Sequence[str]) -> tuple[str, ...]:
    """Validate augmentation names.

    Raises:
        UnmixError: an unknown name.
    """
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        raise UnmixError(
            f"unknown source augmentation(s) {unknown}; choose from {list(AUGMENTATIONS)}"
        )
    return tuple(names)


def draw(rng: np.random.Generator, names: Sequence[str]) -> Augment:
    """Draw the random values of the augmentations ``names`` (a fixed number of draws)."""
    gain = float(rng.uniform(*GAIN_RANGE)) if "gain" in names else 1.0
    swap = bool(rng.random() < 0.5) if "channelswap" in names else False
    speed = float(rng.uniform(*SPEED_RANGE)) if "speed" in names else 1.0
    return Augment(gain, swap, speed)


def span(length: int, speed: float) -> int:
    """Input samples that :func:`resample` reads to make ``length`` samples at ``speed``."""
    return int(np.floor((length - 1) * speed)) + 2


def resample(audio: np.ndarray, speed: float, length: int) -> np.ndarray:
    """``audio (C, T)`` played ``speed`` times faster: ``(C, length)`` float32, sample ``k``
    linearly interpolated at input position ``k · speed`` (positions past the end repeat
    the last sample). Applied to every source of an excerpt before mixing, so the mixture
    and the targets stay aligned."""
    positions = np.arange(length) * speed
    grid = np.arange(audio.shape[1])
    return np.stack([np.interp(positions, grid, ch) for ch in audio]).astype(np.float32)


def apply(audio: np.ndarray, aug: Augment) -> np.ndarray:
    """Apply to ``(nb_channels, nb_timesteps)`` audio; returns a new float32 array."""
    out = np.asarray(audio, dtype=np.float32)
    if aug.swap and out.shape[0] == 2:
        out = out[::-1]
    return np.ascontiguousarray(out * np.float32(aug.gain), dtype=np.float32)
