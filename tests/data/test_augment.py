"""Source augmentations (``unmix.data.augment``): the ``speed`` augmentation (playback rate,
tempo and pitch together) keeps the mixture and the targets aligned, has the excerpt's
length, stays inside the song, and leaves the draws of runs without it unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from unmix.data import ExcerptDataset, ExcerptSampler, Song, augment
from unmix.data.datasets import excerpt
from unmix.data.sampler import Draw
from unmix.errors import UnmixError

SOURCES = ("vocals", "drums", "bass", "other")


def test_speed_is_drawn_after_the_others_so_older_runs_draw_the_same() -> None:
    old = augment.draw(np.random.default_rng(5), ("gain", "channelswap"))
    new = augment.draw(np.random.default_rng(5), ("gain", "channelswap", "speed"))
    assert (new.gain, new.swap) == (old.gain, old.swap) and old.speed == 1.0
    low, high = augment.SPEED_RANGE
    speeds = [augment.draw(np.random.default_rng(k), ("speed",)).speed for k in range(200)]
    assert low <= min(speeds) < 0.92 and 1.08 < max(speeds) < high


def test_resample_plays_faster_or_slower_by_linear_interpolation() -> None:
    x = np.random.default_rng(0).standard_normal((2, 1000)).astype(np.float32)
    assert np.array_equal(augment.resample(x, 1.0, 1000), x)
    assert np.array_equal(augment.resample(x, 2.0, 400), x[:, :800:2])
    half = augment.resample(x, 0.5, 1000)
    assert np.allclose(half[:, 1::2][:, :499], (x[:, :499] + x[:, 1:500]) / 2, atol=1e-6)
    for speed in (0.9, 1.1):  # reads exactly span() samples
        need = augment.span(1000, speed)
        assert (1000 - 1) * speed < need - 1 and augment.resample(
            x[:, :need], speed, 1000
        ).shape == (2, 1000)


def test_a_stretched_excerpt_has_the_excerpt_length_and_stays_inside_the_song() -> None:
    data = np.arange(2 * 500, dtype=np.float32).reshape(2, 500)
    song = Song("s", {"vocals": data})
    fast = augment.Augment(speed=1.1)
    cut = excerpt(song, "vocals", Draw(0, 80, fast), 400)  # 440 samples from 80: too late
    start = 500 - augment.span(400, 1.1)
    assert cut.shape == (2, 400) and start == 60
    assert np.allclose(cut, augment.resample(data[:, start:], 1.1, 400))
    assert cut[0, 0] == start and cut[0, -1] <= 499
    slow = excerpt(song, "vocals", Draw(0, 60, augment.Augment(speed=0.9)), 400)
    assert np.allclose(slow[0], 60 + 0.9 * np.arange(400), atol=1e-3)  # starts where drawn


def test_the_mixture_is_the_sum_of_the_stretched_targets() -> None:
    rng = np.random.default_rng(1)
    songs = [
        Song(f"s{k}", {s: rng.standard_normal((2, 3000)).astype(np.float32) for s in SOURCES})
        for k in range(3)
    ]
    sampler = ExcerptSampler(
        [3000] * 3, SOURCES, 1000, 4, seed=3, augmentations=("gain", "channelswap", "speed")
    )
    assert any(d.aug.speed != 1.0 for item in sampler.epoch(0) for d in item.values())
    for mix, targets in ExcerptDataset(songs, sampler, SOURCES, 0):
        assert mix.shape == (2, 1000) and targets.shape == (4, 2, 1000)
        assert np.allclose(mix.numpy(), targets.numpy().sum(0), atol=1e-5)


def test_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(UnmixError, match="speed"):
        augment.check_names(["pitch"])
