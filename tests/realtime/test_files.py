"""unmix.realtime.files: warming a stream up before a paced run changes none of its output."""

from __future__ import annotations

import numpy as np
import pytest

from unmix.realtime import StreamSeparator
from unmix.realtime.files import warm_up

from .common import music_like, tiny_separator

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("key", ["44k-stereo", "16k-mono"])
def test_a_warmed_up_stream_gives_what_a_fresh_stream_gives(key: str) -> None:
    separator = tiny_separator(key)
    fresh, warmed = StreamSeparator(separator), StreamSeparator(separator)
    warm_up(warmed, 300, blocks=5)
    audio = music_like(fresh.nb_channels, 2000, seed=1)
    for start in range(0, 2000, 300):
        np.testing.assert_array_equal(
            warmed.process(audio[:, start : start + 300]),
            fresh.process(audio[:, start : start + 300]),
        )
    np.testing.assert_array_equal(warmed.flush(), fresh.flush())


def test_warm_up_runs_the_stream_then_resets_it() -> None:
    calls: list[str] = []

    class Recorder:
        nb_channels = 2

        def process(self, block: np.ndarray) -> np.ndarray:
            assert block.shape == (2, 64) and not block.any()
            calls.append("process")
            return block

        def reset(self) -> None:
            calls.append("reset")

    warm_up(Recorder(), 64)  # type: ignore[arg-type]
    assert calls == ["process"] * 4 + ["reset"]
