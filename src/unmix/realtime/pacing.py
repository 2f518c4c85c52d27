"""Pacing a stream at the audio rate, counting overruns, and the timing report.

A real audio callback receives block ``i`` at ``t0 + (i + 1)·d`` (``d`` = block duration) and
must hand its output back before the next block is due, ``t0 + (i + 2)·d``. :class:`Pacer`
reproduces that on a file: it waits until a block would have arrived, times the work, and
counts an **overrun** whenever the work ends after the block's deadline. A late block also
delays the next ones (the backlog is never dropped, since every sample is written), so one
stall can make several overruns in a row; the report's ``slow_blocks`` counts the blocks
whose own compute took longer than a block, without the backlog.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Pacer:
    """Time every block; with ``realtime``, also wait for it to "arrive" and count overruns.

    Args:
        block_seconds: duration of one block of audio.
        realtime: pace the input at the audio rate (else run as fast as possible).
        clock, sleep: injectable for tests.
    """

    block_seconds: float
    realtime: bool = False
    clock: Callable[[], float] = time.perf_counter
    sleep: Callable[[float], None] = time.sleep
    compute: list[float] = field(default_factory=list)
    overruns: int = 0
    #: a sound card paces the blocks (live audio): overruns come from its status flags
    paced_by_device: bool = False
    _start: float | None = None

    def run(self, work: Callable[[], None]) -> None:
        """Run ``work`` as the next block."""
        index = len(self.compute)
        if self.realtime:
            if self._start is None:
                self._start = self.clock()
            arrival = self._start + (index + 1) * self.block_seconds
            wait = arrival - self.clock()
            if wait > 0:
                self.sleep(wait)
        began = self.clock()
        work()
        ended = self.clock()
        self.compute.append(ended - began)
        if self.realtime:
            assert self._start is not None
            if ended > self._start + (index + 2) * self.block_seconds:
                self.overruns += 1


def timing_summary(seconds: list[float]) -> dict[str, float]:
    """p50/p99/max of per-block compute times, in milliseconds (zeros for no blocks)."""
    if not seconds:
        return {"p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0, "mean_ms": 0.0}
    ms = np.asarray(seconds) * 1000.0
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
        "mean_ms": float(ms.mean()),
    }


def stream_report(
    pacer: Pacer, latency: int, block: int, sample_rate: int, extra: dict[str, object]
) -> dict[str, object]:
    """The ``--report`` JSON of ``unmix stream``."""
    block_ms = 1000.0 * block / sample_rate
    summary = timing_summary(pacer.compute)
    return {
        **extra,
        "sample_rate": sample_rate,
        "latency_samples": latency,
        "latency_ms": 1000.0 * latency / sample_rate,
        "block_samples": block,
        "block_ms": block_ms,
        "blocks": len(pacer.compute),
        "realtime": pacer.realtime,
        "overruns": pacer.overruns if pacer.realtime or pacer.paced_by_device else None,
        # blocks whose own compute exceeded a block's duration (no backlog counted)
        "slow_blocks": sum(t > pacer.block_seconds for t in pacer.compute),
        **summary,
        "p99_of_block": summary["p99_ms"] / block_ms,
    }
