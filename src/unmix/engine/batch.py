"""Batches: inputs (files, folders, ``-``) → planned jobs → stem files, one failure at a time.

:func:`plan_batch` finds the inputs and decides every output path (refusing clashes,
over-long names and outputs that would replace their own input); :func:`separate_files`
runs the jobs, skipping existing outputs unless ``force``, and reports through a
:class:`BatchListener`. One bad file never stops the batch.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .. import audio as audio_io
from ..audio.spool import is_stdin, seekable_input
from ..errors import UnmixError
from ..fileio import remove_stale_temporaries
from ..separator import Separator
from .files import FileReport, separate_file
from .segments import SegmentPlan, plan_segments

#: longest file name (bytes) most file systems take (NAME_MAX)
NAME_MAX = 255


@dataclass(frozen=True)
class OutputOptions:
    """Where and how stems are written, and which part of each input is separated."""

    out_dir: Path = Path("separated")
    fmt: str = "wav"
    bits: str | None = None
    force: bool = False
    start: float = 0.0
    duration: float | None = None


@dataclass(frozen=True)
class Job:
    """One input and where its stems go."""

    path: Path
    destination: Path  # folder, or the one file (stems)

    @property
    def label(self) -> str:
        """How messages name the input."""
        return "standard input" if is_stdin(self.path) else str(self.path)


@dataclass
class BatchPlan:
    """The jobs of a batch and one error line per input that cannot run."""

    options: OutputOptions
    jobs: list[Job] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    nb_inputs: int = 0


@dataclass
class BatchResult:
    """What :func:`separate_files` did (``failed`` counts the plan's errors too)."""

    reports: dict[Path, FileReport] = field(default_factory=dict)
    skipped: list[Job] = field(default_factory=list)
    failed: int = 0
    nb_inputs: int = 0


class BatchListener:
    """Callbacks of :func:`separate_files`; this base class ignores them all."""

    def skipped(self, job: Job, existing: Path) -> None:
        """``job`` was not run: ``existing`` is there and ``force`` is off."""

    def started(self, job: Job, seconds: float | None) -> None:
        """``job`` starts; ``seconds`` of audio are expected (None: unknown)."""

    def progress(self, seconds: float) -> None:
        """``seconds`` more of the current job's audio are done."""

    def finished(self, job: Job, report: FileReport, elapsed: float) -> None:
        """``job`` wrote its stems in ``elapsed`` seconds."""

    def failed(self, job: Job, message: str) -> None:
        """``job`` failed with the one-line ``message``; nothing of it was written."""


def input_name(path: Path) -> str:
    """``song`` for ``song.mp3`` and ``song.stem.mp4``; ``stdin`` for ``-``."""
    if is_stdin(path):
        return "stdin"
    if path.name.lower().endswith(".stem.mp4"):
        return path.name[: -len(".stem.mp4")]
    return path.stem


def _is_inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except (ValueError, OSError):
        return False
    return True


def _walk(folder: Path, out_dir: Path) -> tuple[list[Path], str | None]:
    """Audio files under ``folder`` (hidden ones and those inside ``out_dir`` left out)."""
    if _is_inside(folder, out_dir):
        return [], (
            f"{folder}: the folder is inside --out-dir {out_dir}, and files there are never "
            "taken as inputs (they are outputs); choose another --out-dir"
        )
    files = sorted(
        f
        for f in folder.rglob("*")
        if f.is_file()
        and audio_io.is_audio_name(f)
        and not any(part.startswith(".") for part in f.relative_to(folder).parts)
        and not _is_inside(f, out_dir)
    )
    return files, None if files else f"{folder}: no audio files found in this folder"


def find_inputs(inputs: Sequence[Path], out_dir: Path) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Files to separate as ``(file, sub-folder under OUT)``, and one error per bad input.

    Folders are walked recursively for audio file names; files given by name (and ``-``,
    pipes, FIFOs) are taken whatever their ending.
    """
    found: list[tuple[Path, Path]] = []
    errors: list[str] = []
    for item in map(Path, inputs):
        if is_stdin(item):
            found.append((item, Path()))
        elif item.is_dir():
            files, error = _walk(item, out_dir)
            errors.extend([error] if error else [])
            found.extend((f, f.parent.relative_to(item)) for f in files)
        elif item.exists():
            found.append((item, Path()))
        else:
            errors.append(f"{item}: no such file or folder")
    return found, errors


def _too_long(destination: Path) -> bool:
    return len(os.fsencode(destination.name)) > NAME_MAX


def plan_batch(inputs: Sequence[str | Path], options: OutputOptions) -> BatchPlan:
    """Find the inputs and their output paths.

    Inputs that would write the same outputs, whose output name is too long for the file
    system, or that appear twice as stdin, become error lines; the rest become jobs.
    """
    output_format = audio_io.get_format(options.fmt)
    found, errors = find_inputs([Path(p) for p in inputs], options.out_dir)
    plan = BatchPlan(options, errors=errors, nb_inputs=len(found) + len(errors))
    taken: dict[Path, Path] = {}
    for path, sub in found:
        destination = output_format.output_path(options.out_dir / sub, input_name(path))
        if _too_long(destination):
            plan.errors.append(
                f"{path}: its output name would be {len(os.fsencode(destination.name))} bytes, "
                f"more than the {NAME_MAX} a file name may have; rename the input"
            )
        elif destination in taken:
            plan.errors.append(
                f"{path}: its stems would overwrite those of {taken[destination]} in "
                f"{destination}; separate it in another call with a different --out-dir"
            )
        else:
            taken[destination] = path
            plan.jobs.append(Job(path, destination))
    return plan


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def _existing_output(outputs: list[Path]) -> Path | None:
    for output in outputs:
        try:
            if output.exists():
                return output
        except OSError:  # a name the file system refuses: the write reports it
            return None
    return None


def _expected_seconds(path: Path, start: float, duration: float | None) -> float | None:
    try:
        total = audio_io.info(path).duration
    except UnmixError:
        return None  # the separation itself reports the problem
    if not total:
        return None
    rest = max(total - start, 0.0)
    return min(rest, duration) if duration is not None else rest


def prepare_out_dir(out_dir: Path) -> None:
    """Create ``out_dir`` (and its parents) and check that it is writable."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UnmixError(
            f"cannot create output folder {out_dir}: {exc.strerror or exc}; choose another "
            "--out-dir"
        ) from exc
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise UnmixError(f"output folder {out_dir} is not writable; choose another --out-dir")


def _run_job(
    separator: Separator, job: Job, options: OutputOptions, plan: SegmentPlan,
    listener: BatchListener,
) -> FileReport:  # fmt: skip
    with seekable_input(job.path, options.out_dir) as source:
        listener.started(job, _expected_seconds(source, options.start, options.duration))
        return separate_file(
            separator, source, job.destination, options.fmt, options.bits, options.start,
            options.duration, plan, listener.progress,
        )  # fmt: skip


def _message(job: Job, exc: BaseException) -> str:
    if isinstance(exc, UnmixError):
        text = str(exc)
    elif isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.strerror}" + (f": {exc.filename}" if exc.filename else "")
    else:
        text = f"unexpected {type(exc).__name__}: {exc}"
    return text if job.label in text else f"{job.label}: {text}"


def separate_files(
    separator: Separator,
    inputs: Sequence[str | Path] | BatchPlan,
    options: OutputOptions | None = None,
    plan: SegmentPlan | None = None,
    listener: BatchListener | None = None,
) -> BatchResult:
    """Separate files and folders into stems under ``options.out_dir``.

    Args:
        separator: a loaded :class:`Separator`.
        inputs: paths (files, folders walked recursively, ``-`` for stdin) or a plan from
            :func:`plan_batch` (whose options are then used).
        options: output folder, format, ``force``, part of each input (Default:
            :class:`OutputOptions`).
        plan: segment geometry (Default: :func:`unmix.engine.segments.plan_segments`).
        listener: progress and result callbacks (Default: none).

    Returns:
        a :class:`BatchResult`; ``failed`` counts every input that produced no stems for
        a reason other than existing outputs.

    Raises:
        UnmixError: bad options or an output folder that cannot be created (the inputs'
            own problems are reported per input).
    """
    batch = (
        inputs if isinstance(inputs, BatchPlan) else plan_batch(inputs, options or OutputOptions())
    )
    options, listener = batch.options, listener or BatchListener()
    plan = plan or plan_segments(separator)
    output_format = audio_io.get_format(options.fmt)
    output_format.sample_format(options.bits)
    result = BatchResult(failed=len(batch.errors), nb_inputs=batch.nb_inputs)
    prepare_out_dir(options.out_dir)
    remove_stale_temporaries(options.out_dir)
    for job in batch.jobs:
        outputs = list(output_format.files(job.destination, separator.output_names))
        for folder in {o.parent for o in outputs}:
            remove_stale_temporaries(folder)
        existing = _existing_output(outputs)
        if not is_stdin(job.path) and any(_same_file(job.path, o) for o in outputs):
            listener.failed(
                job,
                f"{job.label}: its stems would replace the input itself; choose another --out-dir",
            )
            result.failed += 1
        elif existing is not None and not options.force:
            listener.skipped(job, existing)
            result.skipped.append(job)
        else:
            started = time.perf_counter()
            try:
                report = _run_job(separator, job, options, plan, listener)
            except Exception as exc:  # one broken file must not stop a batch
                listener.failed(job, _message(job, exc))
                result.failed += 1
            else:
                result.reports[job.path] = report
                listener.finished(job, report, time.perf_counter() - started)
    return result
