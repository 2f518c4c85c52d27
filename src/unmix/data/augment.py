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
AUGMENTATIONS = ("gain", "channelswap")

#: uniform gain range of the ``gain`` augmentation, ``[low, high)``
GAIN_RANGE = (0.25, 1.25)


@dataclass(frozen=True)
class Augment:
    """Drawn augmentation of one source excerpt.

    Attributes:
        gain: linear gain.
        swap: swap the left and right channels.
    """

    gain: float = 1.0
    swap: bool = False


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
    return Augment(gain, swap)


def apply(audio: np.ndarray, aug: Augment) -> np.ndarray:
    """Apply to ``(nb_channels, nb_timesteps)`` audio; returns a new float32 array."""
    out = np.asarray(audio, dtype=np.float32)
    if aug.swap and out.shape[0] == 2:
        out = out[::-1]
    return np.ascontiguousarray(out * np.float32(aug.gain), dtype=np.float32)
