"""Pacer: waits for each block's arrival and counts the blocks that miss their deadline.

All timing here runs on a fake clock: the tests check the pacing logic, never real time.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from unmix.errors import UnmixError
from unmix.realtime import pacing
from unmix.realtime.pacing import (
    Pacer,
    check_buffer_blocks,
    raise_priority,
    steal_seconds,
    stream_report,
    timing_summary,
)


class FakeClock:
    """Time moves only when someone sleeps or works, plus ``tick`` per reading (a spin ends)."""

    def __init__(self, oversleep: float = 0.0, tick: float = 1e-9) -> None:
        self.now = 0.0
        self.oversleep, self.tick = oversleep, tick
        self.reads = 0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        self.reads += 1
        self.now += self.tick
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds + self.oversleep

    def work(self, seconds: float) -> None:
        self.now += seconds


def paced(clock: FakeClock, spin: float = 0.0) -> Pacer:
    return Pacer(1.0, realtime=True, spin=spin, clock=clock, sleep=clock.sleep)


@pytest.mark.parametrize(("costs", "overruns"), [([0.5, 0.9, 0.2], 0), ([0.5, 1.5, 0.2], 1),
                                                  ([2.5, 0.1, 0.1, 0.1], 2)])  # fmt: skip
def test_overruns(costs: list[float], overruns: int) -> None:
    clock = FakeClock()
    pacer = paced(clock)
    for cost in costs:
        pacer.run(lambda cost=cost: clock.work(cost))
    assert pacer.overruns == overruns
    assert pacer.compute == pytest.approx(costs)


def test_an_overrun_is_work_ending_after_the_next_arrival() -> None:
    # block 0 arrives at 1, is due at 2; block 1 waits for block 0 (backlog)
    clock = FakeClock()
    pacer = paced(clock)
    pacer.run(lambda: clock.work(1.2))  # ends at 2.2 > 2: overrun
    pacer.run(lambda: clock.work(0.7))  # starts at 2.2 (arrived at 2), ends at 2.9 <= 3
    assert pacer.overruns == 1
    assert pacer.wake == pytest.approx([0.0, 0.2], abs=1e-6)
    assert pacer.response == pytest.approx([1.2, 0.9], abs=1e-6)


def test_deadlines_are_absolute_so_late_wake_ups_do_not_drift() -> None:
    clock = FakeClock(oversleep=0.3)  # every sleep ends 0.3 late
    pacer = paced(clock)
    for _ in range(50):
        pacer.run(lambda: clock.work(0.1))
    # each block wakes 0.3 after its own arrival, never later: no accumulation
    assert pacer.wake == pytest.approx([0.3] * 50, abs=1e-6)
    assert pacer.overruns == 0
    assert clock.now == pytest.approx(50 + 0.3 + 0.1, abs=1e-6)


def test_sleeps_until_shortly_before_the_arrival_then_spins() -> None:
    clock = FakeClock(tick=1e-4)
    pacer = paced(clock, spin=0.05)
    pacer.begin()  # t0 = 0.0001
    reads = clock.reads
    pacer.run(lambda: None)
    assert clock.sleeps == pytest.approx([1.0 - 0.05 - 1e-4], abs=1e-6)
    assert clock.reads - reads > 400  # spun the last 0.05 s on the clock
    assert 0.0 <= pacer.wake[0] < 3e-4  # started at the arrival, not a scheduler tick later


def test_a_spin_covers_a_late_wake_up_shorter_than_itself() -> None:
    clock = FakeClock(oversleep=0.02, tick=1e-4)
    pacer = paced(clock, spin=0.05)
    for _ in range(3):
        pacer.run(lambda: clock.work(0.1))
    assert max(pacer.wake) < 3e-4


def test_input_waits_count_blocks_whose_input_came_after_their_arrival() -> None:
    clock = FakeClock()
    pacer = paced(clock)
    pacer.begin()
    pacer.note_input_wait(0.5)  # block 0 arrives at 1: in time
    pacer.note_input_wait(1.5)  # late
    assert pacer.input_waits == 1


def test_without_realtime_nothing_waits_and_overruns_are_not_reported() -> None:
    clock = FakeClock()
    pacer = Pacer(1.0, clock=clock, sleep=clock.sleep)
    pacer.run(lambda: clock.work(3.0))
    assert clock.now == pytest.approx(3.0) and not clock.sleeps
    report = stream_report(pacer, 2047, 512, 44100, {"model": "x"})
    assert report["overruns"] is None
    assert report["latency_ms"] == pytest.approx(46.417, abs=1e-3)
    assert report["p99_ms"] == pytest.approx(3000.0) and report["blocks"] == 1
    assert report["slow_blocks"] == 1
    assert "response_p99_ms" not in report


def test_realtime_report_has_the_lateness_distribution() -> None:
    clock = FakeClock()
    pacer = paced(clock)
    pacer.priority = "SCHED_FIFO 10"
    for cost in (0.2, 1.5, 0.2):
        pacer.run(lambda cost=cost: clock.work(cost))
    report = stream_report(pacer, 10, 100, 100, {})
    assert report["overruns"] == 1
    assert report["response_max_ms"] == pytest.approx(1500.0, abs=1e-3)
    assert report["wake_max_ms"] == pytest.approx(500.0, abs=1e-3)  # block 2 waited for 1
    assert report["priority"] == "SCHED_FIFO 10"
    assert report["input_waits"] == 0


def test_timing_summary() -> None:
    s = timing_summary([0.001 * k for k in range(1, 101)])
    assert s["p50_ms"] == pytest.approx(50.5) and s["max_ms"] == pytest.approx(100.0)
    assert timing_summary([])["p99_ms"] == 0.0
    assert set(timing_summary([0.1], "wake_")) == {f"wake_{k}_ms" for k in ("p50", "p99", "max",
                                                                          "mean")}  # fmt: skip


def test_priority_not_permitted_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(pacing.os, "sched_setscheduler", refuse)
    monkeypatch.setattr(pacing.os, "setpriority", refuse)
    got, restore = raise_priority()
    assert got == "normal (raising the priority was not permitted: Operation not permitted)"
    restore()


@pytest.mark.skipif(not hasattr(os, "sched_getscheduler"), reason="Linux scheduling calls")
def test_priority_is_restored() -> None:
    before = os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0)
    got, restore = raise_priority()
    assert got.startswith(("SCHED_FIFO", "nice", "normal ("))
    restore()
    assert (os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0)) == before


# --- output periods (--buffer-blocks N): block i is due at a_i + N·d ---


@pytest.mark.parametrize(("buffers", "overruns"), [(1, 1), (2, 0)])
def test_a_stall_of_one_and_a_half_blocks_is_an_overrun_only_with_one_output_block(
    buffers: int, overruns: int
) -> None:
    clock = FakeClock()
    pacer = Pacer(1.0, realtime=True, buffer_blocks=buffers, spin=0.0, clock=clock,
                  sleep=clock.sleep)  # fmt: skip
    for cost in (0.2, 1.5, 0.2, 0.2):
        pacer.run(lambda cost=cost: clock.work(cost))
    assert pacer.overruns == overruns
    assert pacer.response == pytest.approx([0.2, 1.5, 0.7, 0.2], abs=1e-6)


@pytest.mark.parametrize(("buffers", "overruns"), [(1, 4), (2, 0), (3, 0)])
def test_the_backlog_of_a_stall_is_worked_off_and_counted_block_by_block(
    buffers: int, overruns: int
) -> None:
    # block 0 stalls for 1.5 blocks, then three blocks of 0.9 leave only 0.1 each to catch up:
    # ends at 2.5, 3.4, 4.3, 5.2, 5.3 against arrivals 1..5
    clock = FakeClock()
    pacer = Pacer(1.0, realtime=True, buffer_blocks=buffers, spin=0.0, clock=clock,
                  sleep=clock.sleep)  # fmt: skip
    for cost in (1.5, 0.9, 0.9, 0.9, 0.1):
        pacer.run(lambda cost=cost: clock.work(cost))
    assert pacer.overruns == overruns
    assert pacer.wake == pytest.approx([0.0, 0.5, 0.4, 0.3, 0.2], abs=1e-6)
    assert pacer.response == pytest.approx([1.5, 1.4, 1.3, 1.2, 0.3], abs=1e-6)
    # deadlines stay absolute: block 5 starts at its own arrival, the backlog gone
    pacer.run(lambda: clock.work(0.1))
    assert pacer.wake[-1] == pytest.approx(0.0, abs=1e-6)


def test_a_stall_longer_than_the_buffer_is_still_an_overrun() -> None:
    clock = FakeClock()
    pacer = Pacer(1.0, realtime=True, buffer_blocks=2, spin=0.0, clock=clock, sleep=clock.sleep)
    for cost in (2.1, 0.1, 0.1):
        pacer.run(lambda cost=cost: clock.work(cost))
    assert pacer.overruns == 1  # 2.1 > 2 blocks; block 1 then ends at 3.2 <= 4


@pytest.mark.parametrize("buffers", [1, 2, 3])
def test_report_gives_buffer_blocks_and_output_latency(buffers: int) -> None:
    clock = FakeClock()
    pacer = Pacer(512 / 44100, realtime=True, buffer_blocks=buffers, spin=0.0, clock=clock,
                  sleep=clock.sleep)  # fmt: skip
    pacer.run(lambda: clock.work(0.001))
    report = stream_report(pacer, 2047, 512, 44100, {})
    assert report["buffer_blocks"] == buffers
    assert report["latency_samples"] == 2047  # the algorithmic latency, unchanged
    assert report["output_latency_samples"] == 2047 + (buffers - 1) * 512
    assert report["output_latency_ms"] == pytest.approx(1000 * (2047 + (buffers - 1) * 512) / 44100)
    assert report["latency_ms"] == pytest.approx(46.417, abs=1e-3)


@pytest.mark.parametrize("bad", [0, -1, 65, 1.5, True])
def test_bad_buffer_blocks_are_refused_in_one_line(bad: object) -> None:
    with pytest.raises(UnmixError, match=r"^--buffer-blocks must be .* got ") as info:
        Pacer(1.0, buffer_blocks=bad)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)
    assert check_buffer_blocks(64) == 64


def test_slow_blocks_off_the_cpu_are_told_apart_from_slow_work() -> None:
    clock = FakeClock()
    used = [0.0]  # the thread's own CPU time: only what it spends working
    pacer = Pacer(1.0, realtime=True, spin=0.0, clock=clock, sleep=clock.sleep,
                  cpu_clock=lambda: used[0])  # fmt: skip

    def work(wall: float, cpu: float) -> None:
        clock.work(wall)
        used[0] += cpu

    for wall, cpu in ((0.5, 0.5), (1.5, 1.4), (1.5, 0.3), (0.2, 0.2)):
        pacer.run(lambda wall=wall, cpu=cpu: work(wall, cpu))
    assert pacer.cpu == pytest.approx([0.5, 1.4, 0.3, 0.2])
    report = stream_report(pacer, 10, 100, 100, {})
    assert report["slow_blocks"] == 2 and report["slow_blocks_off_cpu"] == 1


def test_steal_seconds_reads_the_steal_column(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    stat.write_text("cpu  2111295 195276 433398 1362105 5314 0 1265 6662 0 0\ncpu0 1 2 3\n")
    assert steal_seconds(str(stat)) == pytest.approx(6662 / os.sysconf("SC_CLK_TCK"))
    stat.write_text("cpu  1 2 3\n")  # an old kernel without the column
    assert steal_seconds(str(stat)) is None
    assert steal_seconds(str(tmp_path / "missing")) is None


def test_realtime_report_gives_the_steal_over_the_run() -> None:
    clock = FakeClock()
    pacer = paced(clock)
    pacer.run(lambda: clock.work(0.1))
    assert stream_report(pacer, 10, 100, 100, {})["steal_ms"] is None
    pacer.steal = 0.03
    assert stream_report(pacer, 10, 100, 100, {})["steal_ms"] == pytest.approx(30.0)
