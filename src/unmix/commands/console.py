"""Console output of ``unmix separate``: notes and errors on stderr, one result line per
file on stdout, progress bars only on a terminal (and not with ``--quiet``)."""

from __future__ import annotations

import sys
from pathlib import Path

from tqdm import tqdm

from ..engine import BatchListener, FileReport, Job, input_name
from ..text import printable


class Console(BatchListener):
    """Notes, errors and progress bars on stderr, results on stdout; bars only on a terminal
    and not --quiet. Control characters in messages (file names) are shown escaped."""

    def __init__(self, quiet: bool, parallel: bool = False) -> None:
        self.quiet = quiet
        self.bars = not quiet and sys.stderr.isatty()
        self.file_bars = self.bars and not parallel  # several files at once: the overall bar
        self._bar: tqdm | None = None
        self.overall: tqdm | None = None

    def note(self, message: str) -> None:
        if not self.quiet:
            tqdm.write(f"unmix: {printable(message)}", file=sys.stderr)

    def error(self, message: str) -> None:
        tqdm.write(f"unmix: error: {printable(message)}", file=sys.stderr)

    def result(self, message: str) -> None:
        tqdm.write(printable(message), file=sys.stdout)

    def bar(self, total: float | None, desc: str, unit: str, position: int) -> tqdm:
        return tqdm(
            total=total,
            desc=printable(desc),
            unit=unit,
            position=position,
            leave=False,
            disable=not self.bars,
            dynamic_ncols=True,
            file=sys.stderr,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} {unit} "
            "[{elapsed}<{remaining}]",
        )

    # BatchListener
    def skipped(self, job: Job, existing: Path) -> None:
        self.note(
            f"skipping {job.label}: {existing} exists, made with the same settings "
            "(use --force to overwrite)"
        )
        self._close_bar()

    def kept(self, job: Job, outputs: list[Path]) -> None:
        names = ", ".join(p.name for p in outputs)
        self.note(f"{job.label}: keeping {names} (made with the same settings); writing the rest")

    def started(self, job: Job, seconds: float | None) -> None:
        name = input_name(job.path) if job.path.name in ("", "-") else job.path.name
        name = name if len(name) <= 40 else name[:37] + "..."
        if self.file_bars:
            self._bar = self.bar(seconds, name, "s", position=1)

    def progress(self, seconds: float) -> None:
        if self._bar is not None:
            self._bar.update(seconds)

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self.overall is not None:
            self.overall.update(1)

    def finished(self, job: Job, report: FileReport, elapsed: float) -> None:
        self._close_bar()
        for warning in report.warnings:
            self.note(f"warning: {job.label}: {warning}")
        self.result(_summary(job, report, elapsed))

    def failed(self, job: Job, message: str) -> None:
        self._close_bar()
        self.error(message)


def _summary(job: Job, report: FileReport, elapsed: float) -> str:
    speed = report.seconds / elapsed if elapsed > 0 else float("inf")
    line = (
        f"{job.label} -> {job.destination} ({report.seconds:.1f} s at {report.sample_rate} Hz, "
        f"{report.nb_channels} ch, {speed:.1f}x real time)"
    )
    if report.residual_db is not None:
        line += f"; residual {report.residual_db:.1f} dB re mixture"
    return line
