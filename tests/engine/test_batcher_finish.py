"""The batcher and a stream that has submitted its last segment: that segment runs as soon
as the batcher is free, not when the stream gets round to waiting for it."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from unmix.config import ModelConfig
from unmix.engine import batcher as batching
from unmix.engine.batcher import Batcher
from unmix.engine.segments import SegmentPlan
from unmix.models.umx import UMX, OpenUnmix
from unmix.separator import Separator

TINY = ModelConfig(targets=("vocals", "other"), n_fft=512, n_hop=128, hidden_size=16, max_bin=200)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def sep() -> Separator:
    torch.manual_seed(0)
    model = UMX({t: OpenUnmix.from_config(TINY) for t in TINY.targets})
    return Separator(model, TINY).freeze()


def test_a_finished_stream_does_not_hold_back_its_last_segment(sep, monkeypatch):
    """Two full segments run together; the shorter last one was submitted by ``finish``
    meanwhile. While the stream is still cross-fading the first two (here: waits in its
    join), nothing more can come from it, so the batcher must run the last one at once
    (before: only once the stream waited for it, after both joins; on two threads that
    left one core idle for the joins of two 57-s segments, 0.3-0.5 s per file)."""
    monkeypatch.setattr(batching, "PATIENCE", 60.0)  # a partial batch never runs on time-out
    last_started = threading.Event()
    in_time: list[bool] = []

    def run(separator: Separator, segments: list[np.ndarray]) -> list[np.ndarray]:
        if len(segments) == 1:
            last_started.set()
        return [np.stack([s, s]) for s in segments]

    with Batcher(sep, 2, run=run) as batcher:
        stream = batcher.stream(SegmentPlan(segment=1000, overlap=200))
        join = stream._join

        def slow_join(stems: np.ndarray, last: bool) -> np.ndarray:
            if not last:  # the first two segments' cross-fades
                in_time.append(last_started.wait(5.0))
            return join(stems, last)

        monkeypatch.setattr(stream, "_join", slow_join)
        audio = np.full((2, 2500), 0.5, np.float32)
        parts = [*stream.push(audio), *stream.finish()]
    assert batcher.sizes == [2, 1]
    assert in_time == [True, True]
    np.testing.assert_array_equal(np.concatenate(parts, axis=-1), np.stack([audio, audio]))
