"""run_pipeline: reader → paced compute → writer, bounded, in order, errors from any thread.

The paced thread runs on a fake clock (only it reads the clock), so the pacing results are
deterministic; the helper threads only move items.
"""

from __future__ import annotations

import gc
import itertools
import os
import sys
import threading
from collections.abc import Iterator

import pytest
import torch

from unmix.realtime.pacing import Pacer
from unmix.realtime.pipeline import run_pipeline

from .test_pacing import FakeClock


def test_items_go_through_in_order_and_overruns_are_counted() -> None:
    clock = FakeClock()
    pacer = Pacer(1.0, realtime=True, spin=0.0, clock=clock, sleep=clock.sleep)
    costs = [0.5, 1.4, 0.1, 0.2, 0.3]
    got: list[int] = []

    def process(i: int) -> int:
        clock.work(costs[i])
        return 10 * i

    run_pipeline(iter(range(5)), process, got.append, pacer, depth=2)
    assert got == [0, 10, 20, 30, 40]
    assert pacer.overruns == 1  # block 1 ends at 3.9 > 3
    assert pacer.compute == pytest.approx(costs)
    assert pacer.response == pytest.approx([0.5, 1.4, 0.5, 0.2, 0.3], abs=1e-6)


def test_the_reader_stays_at_most_depth_blocks_ahead() -> None:
    produced, consumed, ahead = [0], [0], []

    def source() -> Iterator[int]:
        for i in itertools.count():  # endless: the run stops on an error after 200 blocks
            produced[0] += 1
            ahead.append(produced[0] - consumed[0])
            yield i

    def process(i: int) -> int:
        consumed[0] += 1
        if i == 200:
            raise RuntimeError("stop here")
        return i

    with pytest.raises(RuntimeError, match="stop here"):
        run_pipeline(source(), process, lambda _: None, Pacer(1.0), depth=4)
    # the queue's 4 plus the block being read and the block being processed
    assert max(ahead) <= 6


@pytest.mark.parametrize("where", ["reader", "compute", "writer"])
def test_an_error_in_any_thread_is_raised_and_every_thread_ends(where: str) -> None:
    def source() -> Iterator[int]:
        for i in itertools.count():
            if where == "reader" and i == 30:
                raise ValueError("reader failed")
            yield i

    def process(i: int) -> int:
        if where == "compute" and i == 30:
            raise ValueError("compute failed")
        return i

    def sink(i: int) -> None:
        if where == "writer" and i == 30:
            raise ValueError("writer failed")

    with pytest.raises(ValueError, match=f"{where} failed"):
        run_pipeline(source(), process, sink, Pacer(1.0), depth=3)
    names = {t.name for t in threading.enumerate()}
    assert not names & {"unmix-stream-reader", "unmix-stream-writer"}


def test_gc_switch_interval_and_priority_are_restored() -> None:
    before = (gc.isenabled(), sys.getswitchinterval())
    policy = os.sched_getscheduler(0) if hasattr(os, "sched_getscheduler") else None
    seen: list[tuple[bool, float]] = []
    clock = FakeClock()
    pacer = Pacer(1.0, realtime=True, spin=0.0, clock=clock, sleep=clock.sleep)

    def process(i: int) -> int:
        seen.append((gc.isenabled(), sys.getswitchinterval()))
        return i

    run_pipeline(iter(range(3)), process, lambda _: None, pacer)
    assert seen[0][0] is False and seen[0][1] < before[1]  # no collections during the run
    assert (gc.isenabled(), sys.getswitchinterval()) == before
    assert pacer.priority.startswith(("SCHED_FIFO", "nice", "normal ("))
    if policy is not None:
        assert os.sched_getscheduler(0) == policy


def test_priority_is_not_raised_with_several_compute_threads() -> None:
    clock = FakeClock()
    pacer = Pacer(1.0, realtime=True, spin=0.0, clock=clock, sleep=clock.sleep)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        run_pipeline(iter(range(2)), lambda i: i, lambda _: None, pacer)
    finally:
        torch.set_num_threads(before)
    assert pacer.priority.startswith("normal (not raised with several compute threads")


@pytest.mark.parametrize("realtime", [True, False])
def test_the_steal_over_a_paced_run_is_recorded(
    realtime: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    readings = iter([10.0, 10.25])
    monkeypatch.setattr("unmix.realtime.pipeline.steal_seconds", lambda: next(readings))
    clock = FakeClock()
    pacer = Pacer(1.0, realtime=realtime, spin=0.0, clock=clock, sleep=clock.sleep)
    run_pipeline(iter(range(3)), lambda i: i, lambda _: None, pacer)
    assert pacer.steal == (pytest.approx(0.25) if realtime else None)
