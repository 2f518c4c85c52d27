"""Pacing a stream at the audio rate, counting overruns, and the timing report.

A sound card hands block ``i`` (``i = 0, 1, ...``) to its callback when the block's last
sample has been captured, at its **arrival** ``a_i = t0 + (i + 1)·d`` (``d`` = block
duration, ``t0`` = start of the stream), and plays the callback's output ``N`` blocks later,
``N`` being the number of output periods (buffers) the card holds (``buffer_blocks``; 1 by
default): the block's **deadline** is ``D_i = a_i + N·d``. Each period beyond the first adds
``d`` to the output latency and lets a block's work take up to ``N·d`` (a stall longer than
a block is absorbed, and the backlog it leaves is worked off while the next blocks wait in
the buffer). :class:`Pacer` reproduces that on a file.
Block ``i``'s work starts at ``s_i >= max(a_i, e_{i-1})`` (not before it has arrived, not
before the previous block is done) and ends at ``e_i``; an **overrun** is a block whose
work ends after its deadline, ``e_i > D_i``. Its **response** ``e_i − a_i`` is what the
report's lateness figures describe (an overrun is a response longer than ``N·d``); its
**wake-up** ``s_i − a_i`` is how late the work started (the thread's wake-up jitter, or a
backlog). A late block delays the ones after it (nothing is dropped, since every sample is
written), so one stall can make several overruns in a row; ``slow_blocks`` counts the blocks
whose own compute took longer than ``d``, backlog aside, and ``slow_blocks_off_cpu`` those
of them during which the thread's own CPU clock advanced less than half the wall time: the
time went elsewhere (on a virtual machine, mostly the host's steal, which the report gives
for the whole run as ``steal_ms``; docs/realtime.md, "What the stalls are").

Deadlines are absolute (computed from ``t0``, never from the previous wake-up, so the
schedule does not drift), and the wait before each arrival sleeps until ``spin`` seconds
before it, then spins on the clock: an OS sleep can end late by a scheduler tick, a spin
cannot.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..errors import UnmixError

#: real-time priority asked for the compute thread (SCHED_FIFO, low in the 1..99 range)
FIFO_PRIORITY = 10
#: and for the reader and writer threads: below the compute thread, above everything else,
#: or the compute thread could wait for the interpreter lock held by a helper thread that
#: waits behind unrelated processes (priority inversion)
HELPER_PRIORITY = 5
#: most output periods ``--buffer-blocks`` accepts
MAX_BUFFER_BLOCKS = 64


def check_buffer_blocks(count: int) -> int:
    """``count`` if it is a valid number of output periods (1..64), else one clear error."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_BUFFER_BLOCKS:
        raise UnmixError(
            f"--buffer-blocks must be a whole number of output blocks from 1 to "
            f"{MAX_BUFFER_BLOCKS} (1 = a deadline one block after arrival), got {count!r}"
        )
    return count


@dataclass
class Pacer:
    """Time every block; with ``realtime``, also wait for it to arrive and count overruns.

    Args:
        block_seconds: duration ``d`` of one block of audio.
        realtime: pace the input at the audio rate (else run as fast as possible).
        buffer_blocks: output periods ``N`` of the modelled sound card: block ``i`` is due at
            ``a_i + N·d`` (see the module docstring).
        spin: seconds of busy waiting before each arrival (after sleeping until then).
        clock, sleep: injectable for tests.
    """

    block_seconds: float
    realtime: bool = False
    buffer_blocks: int = 1
    spin: float = 0.001
    clock: Callable[[], float] = time.perf_counter
    #: the working thread's own CPU time (a stall it did not spend running shows here)
    cpu_clock: Callable[[], float] = time.thread_time
    sleep: Callable[[float], None] = time.sleep
    #: seconds of work per block
    compute: list[float] = field(default_factory=list)
    #: seconds of the thread's own CPU time per block
    cpu: list[float] = field(default_factory=list)
    #: realtime: end of the work minus the block's arrival, per block
    response: list[float] = field(default_factory=list)
    #: realtime: start of the work minus the block's arrival, per block
    wake: list[float] = field(default_factory=list)
    overruns: int = 0
    #: blocks whose input was not ready when their work could have started (reader behind)
    input_waits: int = 0
    #: a sound card paces the blocks (live audio): overruns come from its status flags
    paced_by_device: bool = False
    #: live audio: the latency PortAudio announced (seconds: input, output), if any
    device_latency: tuple[float, ...] | None = None
    #: realtime: seconds the hypervisor ran something else on this machine's CPUs during
    #: the run (all CPUs, from ``/proc/stat``; ``None`` where unknown), see :func:`steal_seconds`
    steal: float | None = None
    #: how the compute thread was scheduled (see :func:`raise_priority`)
    priority: str = "normal"
    _start: float | None = None

    def __post_init__(self) -> None:
        check_buffer_blocks(self.buffer_blocks)

    def begin(self) -> None:
        """Start the clock of the stream (``t0``); the first :meth:`run` does it otherwise."""
        if self._start is None:
            self._start = self.clock()

    def arrival(self, index: int) -> float:
        """When block ``index`` arrives (absolute, from ``t0``)."""
        assert self._start is not None
        return self._start + (index + 1) * self.block_seconds

    def wait_until(self, moment: float) -> None:
        """Sleep until ``spin`` seconds before ``moment``, then spin until it."""
        rest = moment - self.spin - self.clock()
        if rest > 0:
            self.sleep(rest)
        while self.clock() < moment:
            pass

    def run(self, work: Callable[[], None]) -> None:
        """Run ``work`` as the next block (waiting for its arrival with ``realtime``)."""
        index = len(self.compute)
        if self.realtime:
            self.begin()
            self.wait_until(self.arrival(index))
        began, cpu = self.clock(), self.cpu_clock()
        work()
        ended, cpu = self.clock(), self.cpu_clock() - cpu
        self.compute.append(ended - began)
        self.cpu.append(cpu)
        if self.realtime:
            arrival = self.arrival(index)
            self.wake.append(began - arrival)
            self.response.append(ended - arrival)
            if ended > arrival + self.buffer_blocks * self.block_seconds:
                self.overruns += 1

    def note_input_wait(self, ready: float) -> None:
        """The next block's input came from the reader at ``ready``: a wait if after arrival."""
        started = self.realtime and self._start is not None
        if started and ready > self.arrival(len(self.compute)):
            self.input_waits += 1


def raise_priority(priority: int = FIFO_PRIORITY) -> tuple[str, Callable[[], None]]:
    """Give the calling thread real-time priority ``priority`` (1..99) where permitted.

    Returns what was obtained (``"SCHED_FIFO 10"``, else ``"nice -10"``, or ``"normal
    (...)"`` saying why not) and a function that restores the thread's scheduling. Threads
    started afterwards by this thread inherit it, so start helper threads first.
    """
    if not hasattr(os, "sched_setscheduler"):
        return "normal (no SCHED_FIFO on this system)", lambda: None
    try:
        old_policy, old_param = os.sched_getscheduler(0), os.sched_getparam(0)
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except OSError:
        pass
    else:
        return f"SCHED_FIFO {priority}", lambda: os.sched_setscheduler(0, old_policy, old_param)
    try:  # per thread on Linux: the thread id is a process id for setpriority
        tid = threading.get_native_id()
        old = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, -priority)
    except OSError as exc:
        return f"normal (raising the priority was not permitted: {exc.strerror})", lambda: None
    return f"nice -{priority}", lambda: os.setpriority(os.PRIO_PROCESS, tid, old)


def steal_seconds(stat: str = "/proc/stat") -> float | None:
    """Steal time of all CPUs so far (a virtual machine's CPUs taken by the host), or None.

    The ``steal`` column of the ``cpu`` line of ``/proc/stat``, in clock ticks.
    """
    try:
        with open(stat) as f:
            fields = f.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def timing_summary(seconds: list[float], prefix: str = "") -> dict[str, float]:
    """p50/p99/max/mean of per-block seconds, in milliseconds (zeros for no blocks)."""
    keys = [f"{prefix}{k}_ms" for k in ("p50", "p99", "max", "mean")]
    if not seconds:
        return dict.fromkeys(keys, 0.0)
    ms = np.asarray(seconds) * 1000.0
    values = (np.percentile(ms, 50), np.percentile(ms, 99), ms.max(), ms.mean())
    return {k: float(v) for k, v in zip(keys, values, strict=True)}


def stream_report(
    pacer: Pacer, latency: int, block: int, sample_rate: int, extra: dict[str, object]
) -> dict[str, object]:
    """The ``--report`` JSON of ``unmix stream``."""
    block_ms = 1000.0 * block / sample_rate
    summary = timing_summary(pacer.compute)
    paced = pacer.realtime or pacer.paced_by_device
    # the algorithmic latency, plus one block per output period beyond the first
    output_latency = latency + (pacer.buffer_blocks - 1) * block
    report: dict[str, object] = {
        **extra,
        "sample_rate": sample_rate,
        "latency_samples": latency,
        "latency_ms": 1000.0 * latency / sample_rate,
        "buffer_blocks": pacer.buffer_blocks,
        "output_latency_samples": output_latency,
        "output_latency_ms": 1000.0 * output_latency / sample_rate,
        "block_samples": block,
        "block_ms": block_ms,
        "blocks": len(pacer.compute),
        "realtime": pacer.realtime,
        "overruns": pacer.overruns if paced else None,
        # blocks whose own compute exceeded a block's duration (no backlog counted)
        "slow_blocks": sum(t > pacer.block_seconds for t in pacer.compute),
        # of those, the ones whose thread ran for less than half of it: the time went
        # elsewhere (the hypervisor's steal, preemption), not to this thread's work
        "slow_blocks_off_cpu": sum(
            t > pacer.block_seconds and c < t / 2
            for t, c in zip(pacer.compute, pacer.cpu, strict=True)
        ),
        **summary,
        "p99_of_block": summary["p99_ms"] / block_ms,
    }
    if pacer.device_latency is not None:
        report["device_latency_ms"] = [1000.0 * s for s in pacer.device_latency]
    if pacer.realtime:
        report.update(timing_summary(pacer.response, "response_"))
        report.update(timing_summary(pacer.wake, "wake_"))
        report["input_waits"] = pacer.input_waits
        report["priority"] = pacer.priority
        report["steal_ms"] = None if pacer.steal is None else 1000.0 * pacer.steal
    return report
