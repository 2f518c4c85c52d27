"""Lookahead mode with the chunks computed in the background (``background=True``).

The same samples as the synchronous stream, delayed by exactly one more chunk; no block
waits for a chunk's compute (on a fake clock: a chunk costing 0.6 of its duration makes
blocks of 1/32 chunk late without the worker, none with it); errors; the worker thread's
life and priority.
"""

from __future__ import annotations

import gc
import os
import threading
from collections import deque
from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import Tensor

from unmix.errors import AudioError, UnmixError
from unmix.realtime import StreamSeparator
from unmix.realtime import background as background_module
from unmix.realtime import stream as stream_module
from unmix.realtime.files import warm_up
from unmix.realtime.lookahead import LookaheadEngine
from unmix.realtime.lookahead_carried import CarriedLookaheadEngine
from unmix.realtime.pacing import Pacer

from .common import (
    fixed_sizes,
    impulse_delay,
    music_like,
    random_sizes,
    run_stream,
    tiny_separator,
)
from .test_pacing import FakeClock

pytestmark = pytest.mark.usefixtures("one_thread")

N = 6000
RATE = 16000  # the 16k-mono configuration: n_fft 512, hop 128


def _pair(key: str, channels: int, **kwargs: object) -> tuple[StreamSeparator, StreamSeparator]:
    """The same settings without and with background chunks."""
    separator = tiny_separator(key, unidirectional=False)
    sync = StreamSeparator(separator, nb_channels=channels, **kwargs)  # type: ignore[arg-type]
    bg = StreamSeparator(separator, nb_channels=channels, background=True, **kwargs)  # type: ignore[arg-type]
    return sync, bg


@pytest.mark.parametrize(
    ("key", "channels", "context"),
    [("44k-stereo", 2, None), ("44k-stereo", 1, None), ("16k-mono", 1, None),
     ("16k-mono", 1, 0.05)],
)  # fmt: skip
def test_same_samples_delayed_by_exactly_one_more_chunk(
    key: str, channels: int, context: float | None
) -> None:
    sync, bg = _pair(key, channels, lookahead=0.1, chunk=0.02, context=context)
    engine = bg.engine
    kind = CarriedLookaheadEngine if context is None else LookaheadEngine
    assert isinstance(engine, kind)
    assert bg.background_latency == engine.chunk > 0
    assert bg.latency == sync.latency + engine.chunk
    audio = music_like(channels, N)
    for sizes in (fixed_sizes(N, 1), fixed_sizes(N, 100), [N], random_sizes(N, seed=2)):
        expected = run_stream(sync, audio, sizes)
        got = run_stream(bg, audio, sizes)
        assert got.shape[-1] == expected.shape[-1] + engine.chunk
        assert not got[..., : engine.chunk].any()  # silence first
        np.testing.assert_array_equal(got[..., engine.chunk :], expected)  # bit for bit


def test_an_impulse_answers_exactly_latency_samples_later() -> None:
    _, bg = _pair("16k-mono", 1, lookahead=0.1, chunk=0.05)
    assert impulse_delay(bg, seed=6, largest=300) == bg.latency


def test_background_needs_lookahead_mode() -> None:
    with pytest.raises(UnmixError, match="background chunk computation is for lookahead mode"):
        StreamSeparator(tiny_separator(), background=True)


class _Charged:
    """Wraps a carried engine's chunk compute: each chunk costs ``cost`` seconds of fake
    time, handed to ``charge`` (the fake clock's work, or the simulated worker's)."""

    def __init__(self, engine: CarriedLookaheadEngine, cost: float, clock: FakeClock) -> None:
        self.inner, self.cost = engine._chunk, cost
        self.charge: Callable[[float], None] = clock.work

    def __call__(self, samples: Tensor, state: object) -> object:
        self.charge(self.cost)
        return self.inner(samples, state)  # type: ignore[arg-type]


class _SimulatedWorker:
    """The worker thread as a second core on the fake clock: a block's work starts when it
    was submitted and the worker is free, ends its chunk costs later, and its output is
    visible from then on; waiting for it moves the clock there."""

    def __init__(
        self, advance: Callable[[object, Tensor], tuple[Tensor, object]], state: object,
        clock: FakeClock, charged: _Charged,
    ) -> None:  # fmt: skip
        self.advance, self.state, self.clock, self.charged = advance, state, clock, charged
        self.free = 0.0
        self.done: deque[tuple[float, Tensor]] = deque()
        self.priority = "simulated"

    @property
    def pending(self) -> int:
        return len(self.done)

    def submit(self, block: Tensor) -> None:
        spent: list[float] = []
        self.charged.charge = spent.append
        with torch.inference_mode():
            out, self.state = self.advance(self.state, block)
        self.free = max(self.clock.now, self.free) + sum(spent)
        self.done.append((self.free, out))

    def result(self, wait: bool) -> Tensor | None:
        if not self.done:
            return None
        ends, out = self.done[0]
        if self.clock.now < ends:
            if not wait:
                return None
            self.clock.sleep(ends - self.clock.now)
        self.done.popleft()
        return out

    def stop(self) -> None:
        pass


@pytest.mark.parametrize("background", [False, True])
def test_a_chunk_costing_most_of_its_duration_makes_small_blocks_late_only_without_worker(
    background: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    # chunk 32 hops = 4096 samples (0.256 s), blocks of 1/32 chunk, lookahead 0.1 s
    stream = StreamSeparator(tiny_separator("16k-mono", unidirectional=False), nb_channels=1,
                             lookahead=0.1, chunk=4096 / RATE, background=background)  # fmt: skip
    engine = stream.engine
    assert isinstance(engine, CarriedLookaheadEngine) and engine.chunk == 4096
    chunk_seconds, block = engine.chunk / RATE, engine.chunk // 32
    charged = _Charged(engine, 0.6 * chunk_seconds, clock)
    monkeypatch.setattr(engine, "_chunk", charged)
    monkeypatch.setattr(stream_module, "ChunkWorker",
                        lambda advance, state: _SimulatedWorker(advance, state, clock, charged))  # fmt: skip
    pacer = Pacer(block / RATE, realtime=True, spin=0.0, clock=clock, sleep=clock.sleep)
    audio = music_like(1, 10 * engine.chunk, seed=4)
    outs = []
    for start in range(0, audio.shape[1], block):
        piece = audio[:, start : start + block]
        pacer.run(lambda piece=piece: outs.append(stream.process(piece)))
    chunks = len(pacer.compute) * block // engine.chunk - 2  # complete ones (the lookahead)
    if background:
        assert pacer.overruns == 0 and stream.waits == 0
        assert max(pacer.response) < pacer.block_seconds
    else:  # each chunk's block, and the backlog it leaves, is late
        assert pacer.overruns >= chunks * 0.6 * 32 - chunks
        assert max(pacer.response) >= 0.6 * chunk_seconds
    # and the samples are the same either way
    sync = StreamSeparator(stream.separator, nb_channels=1, lookahead=0.1, chunk=4096 / RATE)
    expected = run_stream(sync, audio, [audio.shape[1]])
    got = np.concatenate([*outs, stream.flush()], -1)
    np.testing.assert_array_equal(got[..., stream.background_latency :], expected)


def test_a_slow_chunk_does_not_hold_up_the_blocks_after_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real thread: a chunk whose compute cannot finish (a closed gate) while the next
    half chunk of blocks is given; none of those calls waits for it."""
    _, bg = _pair("16k-mono", 1, lookahead=0.1, chunk=4096 / RATE)
    engine = bg.engine
    assert isinstance(engine, CarriedLookaheadEngine)
    gate, started, released = threading.Event(), threading.Event(), []
    inner = engine._chunk

    def gated(samples: Tensor, state: object) -> object:
        if not started.is_set():
            started.set()
            released.append(gate.wait(timeout=20))  # False if a caller waited for it
        return inner(samples, state)  # type: ignore[arg-type]

    monkeypatch.setattr(engine, "_chunk", gated)
    block, audio = 128, music_like(1, 4 * engine.chunk, seed=5)
    first = engine.n_fft // 2 + (engine.b + engine.a - 1) * engine.n_hop  # completes chunk 0
    ready = -(-(first - engine.n_fft // 2) // block)  # blocks to give until then
    outs = [bg.process(audio[:, i * block : (i + 1) * block]) for i in range(ready + 16)]
    assert started.wait(timeout=20) and not gate.is_set()
    gate.set()
    outs += [bg.process(audio[:, i * block : (i + 1) * block])
             for i in range(ready + 16, audio.shape[1] // block)]  # fmt: skip
    assert released == [True]
    sync = StreamSeparator(bg.separator, nb_channels=1, lookahead=0.1, chunk=4096 / RATE)
    expected = run_stream(sync, audio, [audio.shape[1]])
    got = np.concatenate([*outs, bg.flush()], -1)
    np.testing.assert_array_equal(got[..., engine.chunk :], expected)


def test_a_bad_block_is_refused_before_it_reaches_the_worker() -> None:
    _, bg = _pair("16k-mono", 1, lookahead=0.1, chunk=0.05)
    audio = music_like(1, N)
    expected = run_stream(bg, audio, [N])
    outs = [bg.process(audio[:, :2500])]
    bad = audio[:, 2500:2600].copy()
    bad[0, 3] = np.nan
    with pytest.raises(AudioError, match="NaN or infinite samples"):
        bg.process(bad)
    outs += [bg.process(audio[:, 2500:]), bg.flush()]
    np.testing.assert_array_equal(np.concatenate(outs, -1), expected)


def test_a_non_finite_background_output_is_raised_and_resets_the_stream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, bg = _pair("16k-mono", 1, lookahead=0.1, chunk=0.05)
    audio = music_like(1, N)
    fresh = run_stream(bg, audio, fixed_sizes(N, 100))
    bg.process(audio[:, :1000])
    advance = bg.engine.advance

    def broken(state: object, block: Tensor) -> tuple[Tensor, object]:
        out, new = advance(state, block)  # type: ignore[arg-type]
        return out * float("nan"), new

    monkeypatch.setattr(bg.engine, "advance", broken)
    with pytest.raises(UnmixError, match=r"NaN or infinite output .* the stream was reset"):
        for start in range(1000, N, 100):  # raised once a chunk's output is due
            bg.process(audio[:, start : start + 100])
    monkeypatch.undo()
    assert bg._worker is None  # reset: a new stream from silence
    np.testing.assert_array_equal(run_stream(bg, audio, fixed_sizes(N, 100)), fresh)


def test_an_engine_error_in_the_worker_reaches_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    _, bg = _pair("16k-mono", 1, lookahead=0.1, chunk=0.05)

    def failing(state: object, block: Tensor) -> tuple[Tensor, object]:
        raise RuntimeError("engine failed")

    monkeypatch.setattr(bg.engine, "advance", failing)
    with pytest.raises(RuntimeError, match="engine failed"):
        for _ in range(100):
            bg.process(np.zeros((1, 100), np.float32))


def test_the_worker_thread_ends_with_reset_flush_and_a_forgotten_stream() -> None:
    _, bg = _pair("16k-mono", 1, lookahead=0.1, chunk=0.05)
    threads = []
    for end in ("reset", "flush", "forget"):
        bg.process(np.zeros((1, 100), np.float32))
        assert bg._worker is not None
        thread = bg._worker._thread
        assert thread.is_alive()
        threads.append(thread)
        if end == "reset":
            bg.reset()
        elif end == "flush":
            bg.flush()
        else:
            del bg
            gc.collect()
        thread.join(timeout=10)
        assert not thread.is_alive()
    assert len(set(threads)) == 3


def test_the_warm_up_computes_a_chunk_and_changes_nothing() -> None:
    _, bg = _pair("16k-mono", 1, lookahead=0.1, chunk=0.05)
    audio = music_like(1, N)
    expected = run_stream(bg, audio, fixed_sizes(N, 64))
    calls: list[int] = []
    engine = bg.engine
    assert isinstance(engine, CarriedLookaheadEngine)
    inner = engine._chunk
    engine._chunk = lambda s, st: calls.append(1) or inner(s, st)  # type: ignore[method-assign]
    warm_up(bg, 64)
    assert calls and bg.waits == 0 and bg._worker is None
    np.testing.assert_array_equal(run_stream(bg, audio, fixed_sizes(N, 64)), expected)


def test_the_worker_runs_below_a_real_time_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    if not hasattr(os, "sched_setscheduler"):
        pytest.skip("no SCHED_FIFO on this system")
    asked: list[int] = []
    monkeypatch.setattr(os, "sched_getscheduler", lambda pid: os.SCHED_FIFO)
    monkeypatch.setattr(os, "sched_getparam", lambda pid: os.sched_param(10))
    monkeypatch.setattr(os, "sched_setscheduler",
                        lambda pid, policy, param: asked.append(param.sched_priority))  # fmt: skip
    assert background_module.lower_realtime_priority() == "SCHED_FIFO 8"
    assert asked == [8]
    monkeypatch.setattr(os, "sched_getscheduler", lambda pid: os.SCHED_OTHER)
    assert background_module.lower_realtime_priority() == "inherited"
    assert asked == [8]


def test_the_worker_uses_the_callers_thread_count_and_inference_mode() -> None:
    seen: list[tuple[int, bool]] = []

    def advance(state: int, block: Tensor) -> tuple[Tensor, int]:
        seen.append((torch.get_num_threads(), torch.is_inference_mode_enabled()))
        return block * 2, state + 1

    worker = background_module.ChunkWorker(advance, 0)
    worker.submit(torch.ones(1, 3))
    out = worker.result(wait=True)
    worker.stop()
    assert out is not None and out.tolist() == [[2.0, 2.0, 2.0]]
    assert seen == [(torch.get_num_threads(), True)]
    assert worker.result(wait=True) is None  # nothing pending
