"""Pacer: waits for each block's arrival and counts the blocks that miss their deadline."""

from __future__ import annotations

import pytest

from unmix.realtime.pacing import Pacer, stream_report, timing_summary


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.parametrize(("costs", "overruns"), [([0.5, 0.9, 0.2], 0), ([0.5, 1.5, 0.2], 1),
                                                  ([2.5, 0.1, 0.1, 0.1], 2)])  # fmt: skip
def test_overruns(costs: list[float], overruns: int) -> None:
    clock = FakeClock()
    pacer = Pacer(1.0, realtime=True, clock=clock, sleep=clock.sleep)
    for cost in costs:
        pacer.run(lambda cost=cost: clock.sleep(cost))
    assert pacer.overruns == overruns
    assert pacer.compute == pytest.approx(costs)


def test_without_realtime_nothing_waits_and_overruns_are_not_reported() -> None:
    clock = FakeClock()
    pacer = Pacer(1.0, clock=clock, sleep=clock.sleep)
    pacer.run(lambda: clock.sleep(3.0))
    assert clock.now == 3.0
    report = stream_report(pacer, 2047, 512, 44100, {"model": "x"})
    assert report["overruns"] is None
    assert report["latency_ms"] == pytest.approx(46.417, abs=1e-3)
    assert report["p99_ms"] == 3000.0 and report["blocks"] == 1
    assert report["slow_blocks"] == 1


def test_timing_summary() -> None:
    s = timing_summary([0.001 * k for k in range(1, 101)])
    assert s["p50_ms"] == pytest.approx(50.5) and s["max_ms"] == pytest.approx(100.0)
    assert timing_summary([])["p99_ms"] == 0.0
