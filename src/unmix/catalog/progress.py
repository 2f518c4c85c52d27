"""Progress of a catalog run: files done, audio hours done, throughput and ETA."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from .ledger import FileRecord
from .plan import Task


def _clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@dataclass
class Progress:
    """Counts finished files against the planned tasks.

    Throughput is audio seconds separated per wall second since the start (the whole
    pool's); the ETA divides the audio still to do (inputs whose duration could not be
    probed count as the mean of the others) by it.
    """

    tasks: Sequence[Task]
    started: float = field(default_factory=time.perf_counter)
    done: int = 0
    failed: int = 0
    audio_done: float = 0.0
    planned_done: float = 0.0

    @property
    def mean(self) -> float:
        """Mean probed duration (what an input of unknown duration counts as)."""
        known = [t.seconds for t in self.tasks if t.seconds is not None]
        return sum(known) / len(known) if known else 0.0

    @property
    def total_audio(self) -> float:
        """Planned audio seconds."""
        return sum(t.seconds if t.seconds is not None else self.mean for t in self.tasks)

    def update(self, record: FileRecord, planned: float | None) -> None:
        """Count ``record`` (``planned``: its probed seconds)."""
        if record.status == "done":
            self.done += 1
            self.audio_done += record.seconds
        else:
            self.failed += 1
        self.planned_done += planned if planned is not None else self.mean

    def line(self) -> str:
        """``12/100 files (1 failed), 0.80/6.50 audio h, 35.2x real time, ETA 0:10:03``."""
        elapsed = time.perf_counter() - self.started
        speed = self.audio_done / elapsed if elapsed > 0 else 0.0
        left = max(self.total_audio - self.planned_done, 0.0)
        eta = _clock(left / speed) if speed > 0 else "?"
        failed = f" ({self.failed} failed)" if self.failed else ""
        return (
            f"{self.done + self.failed}/{len(self.tasks)} files{failed}, "
            f"{self.audio_done / 3600:.3g}/{self.total_audio / 3600:.3g} audio h, "
            f"{speed:.1f}x real time, ETA {eta}"
        )
