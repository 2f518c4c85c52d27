"""Which excerpts an epoch holds: balanced, random-track-mixed, reproducible.

Every random value comes from a NumPy generator seeded with explicit integers:
per-epoch track orders from ``(seed, epoch, source)``, and each excerpt's starts and
augmentations from ``(seed, epoch, global index)``. Nothing depends on worker
processes, on the order items are fetched, or on a global RNG, so a resumed run
sees exactly the excerpts an uninterrupted one would, and ``rank``/``world_size``
split one epoch between distributed processes (rank ``r`` takes the global indices
``r, r + world_size, ...``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from . import augment

_ORDER, _ITEM = 0x0D5E, 0x17E4


@dataclass(frozen=True)
class Draw:
    """One source of one excerpt.

    Attributes:
        song: index into the song list.
        start: first sample.
        aug: augmentation values.
    """

    song: int
    start: int
    aug: augment.Augment


class ExcerptSampler:
    """Plans the excerpts of each epoch.

    Args:
        lengths: samples per channel of each song.
        sources: source names drawn for every excerpt.
        seq_len: excerpt length in samples, or ``None`` for whole songs.
        samples_per_track: excerpts per song and epoch (balanced sampling).
        seed: run seed.
        random_mix: draw every source from an independently chosen song and start
            (with whole songs this is off: all sources come from one song).
        augmentations: names from :data:`unmix.data.augment.AUGMENTATIONS`.
        rank: this process's rank in distributed training.
        world_size: number of processes.
        pools: songs that hold each source (source folders), Default: every song.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        sources: Sequence[str],
        seq_len: int | None,
        samples_per_track: int = 64,
        seed: int = 42,
        random_mix: bool = True,
        augmentations: Sequence[str] = ("gain", "channelswap"),
        rank: int = 0,
        world_size: int = 1,
        pools: Mapping[str, Sequence[int]] | None = None,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        if samples_per_track <= 0:
            raise ValueError(f"samples_per_track must be positive, got {samples_per_track}")
        self.lengths = [int(n) for n in lengths]
        self.sources = tuple(sources)
        self.seq_len = seq_len
        self.samples_per_track = samples_per_track
        self.seed = seed
        self.random_mix = random_mix and seq_len is not None
        self.augmentations = augment.check_names(augmentations)
        self.rank = rank
        self.world_size = world_size
        every = list(range(len(self.lengths)))
        self.pools = {s: list(pools[s]) if pools else every for s in self.sources}
        if not all(self.pools.values()):
            raise ValueError("every source needs at least one song")

    @property
    def total(self) -> int:
        """Excerpts per epoch over all ranks."""
        return max(len(p) for p in self.pools.values()) * self.samples_per_track

    def __len__(self) -> int:
        """Excerpts per epoch for this rank (the remainder is dropped on every rank)."""
        return self.total // self.world_size

    def _orders(self, epoch: int) -> np.ndarray:
        """``(nb_orders, total)`` song index per global index; one row per source with
        random mixing, else one shared row."""
        rows = len(self.sources) if self.random_mix else 1
        out = []
        for k in range(rows):
            pool = np.asarray(self.pools[self.sources[k]])
            base = np.resize(np.repeat(pool, self.samples_per_track), self.total)
            out.append(np.random.default_rng([self.seed, epoch, k, _ORDER]).permutation(base))
        return np.stack(out)

    def epoch(self, epoch: int) -> list[dict[str, Draw]]:
        """The draws of this rank's excerpts of ``epoch``, in training order."""
        orders = self._orders(epoch)
        return [
            self._item(epoch, self.rank + j * self.world_size, orders) for j in range(len(self))
        ]

    def _item(self, epoch: int, index: int, orders: np.ndarray) -> dict[str, Draw]:
        rng = np.random.default_rng([self.seed, epoch, index, _ITEM])
        draws: dict[str, Draw] = {}
        shared_start: int | None = None
        for k, source in enumerate(self.sources):
            song = int(orders[k if self.random_mix else 0, index])
            if self.seq_len is None:
                start = 0
            elif self.random_mix or shared_start is None:
                start = int(rng.integers(0, self.lengths[song] - self.seq_len + 1))
                shared_start = start
            else:
                start = shared_start
            draws[source] = Draw(song, start, augment.draw(rng, self.augmentations))
        return draws
