"""Training excerpts and validation songs as tensors.

:class:`ExcerptDataset` turns one epoch's plan (:class:`~unmix.data.sampler.ExcerptSampler`)
into ``(mix (C, T), targets (J, C, T))`` pairs: sources are cut, augmented and summed.
:class:`ValidationSet` yields whole songs with their real mixture.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from . import augment
from .sampler import Draw, ExcerptSampler
from .songs import Song


def excerpt(song: Song, source: str, draw: Draw, seq_len: int | None) -> np.ndarray:
    """Cut and augment one source: ``(nb_channels, seq_len)`` float32 (with the ``speed``
    augmentation, cut from ``span(seq_len, speed)`` samples, moved back to fit the song)."""
    data = song.sources[source]
    if seq_len is not None and draw.aug.speed != 1.0:  # read more (or less), then resample
        need = min(augment.span(seq_len, draw.aug.speed), song.length)
        start = min(draw.start, song.length - need)
        cut = augment.resample(data[:, start : start + need], draw.aug.speed, seq_len)
        return augment.apply(cut, draw.aug)
    stop = song.length if seq_len is None else draw.start + seq_len
    return augment.apply(data[:, draw.start : stop], draw.aug)


class ExcerptDataset(Dataset[tuple[Tensor, Tensor]]):
    """The excerpts of one epoch.

    With ``use_mixture`` (aligned datasets), the input is the song's real mixture cut at
    the first source's position, without augmentation; otherwise it is the sum of the
    augmented sources.

    Args:
        songs: decoded songs.
        sampler: plans the epoch.
        targets: sources returned as targets, in order (``J`` of them).
        epoch: epoch number (selects the draws).
        use_mixture: use the stored mixture as input.
    """

    def __init__(
        self,
        songs: Sequence[Song],
        sampler: ExcerptSampler,
        targets: Sequence[str],
        epoch: int,
        use_mixture: bool = False,
    ) -> None:
        self.songs = list(songs)
        self.sampler = sampler
        self.targets = tuple(targets)
        self.plan = sampler.epoch(epoch)
        self.use_mixture = use_mixture

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        """Returns:
        ``(mix (C, T), targets (J, C, T))`` float32 tensors.
        """
        draws = self.plan[index]
        seq_len = self.sampler.seq_len
        cut = {s: excerpt(self.songs[d.song], s, d, seq_len) for s, d in draws.items()}
        if self.use_mixture:
            first = next(iter(draws.values()))
            song = self.songs[first.song]
            stop = song.length if seq_len is None else first.start + seq_len
            mix = np.asarray(song.mix()[:, first.start : stop], dtype=np.float32)
        else:
            mix = np.sum(list(cut.values()), axis=0, dtype=np.float32)
        targets = np.stack([cut[t] for t in self.targets])
        return torch.from_numpy(np.ascontiguousarray(mix)), torch.from_numpy(targets)


class ValidationSet:
    """Whole validation songs: ``(mix (C, T), targets (J, C, T))`` with the real mixture."""

    def __init__(self, songs: Sequence[Song], targets: Sequence[str]) -> None:
        self.songs = list(songs)
        self.targets = tuple(targets)

    def __len__(self) -> int:
        return len(self.songs)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        for song in self.songs:
            mix = torch.from_numpy(song.mix())
            targets = np.stack(
                [np.asarray(song.sources[t], dtype=np.float32) for t in self.targets]
            )
            yield mix, torch.from_numpy(targets)
