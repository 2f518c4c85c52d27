"""Batches: inputs (files, folders, ``-``) → planned jobs → stem files, one failure at a time.

:func:`plan_batch` finds the inputs and decides every output path from the ``--filename``
template (:mod:`~unmix.engine.naming`; default ``OUT/<model>/<track>/<stem>.<ext>``),
refusing clashes, over-long names and paths that leave the output folder;
:func:`separate_files` runs the jobs (``jobs`` files at a time on threads sharing the one
model), keeping each existing stem that was made with the same settings, refusing to mix in
stems made otherwise (:mod:`~unmix.engine.record`) unless ``force``, and reports through a
:class:`BatchListener`. One bad file never stops the batch.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import audio as audio_io
from ..audio.sinks import EncodeOptions
from ..audio.spool import is_stdin, seekable_input
from ..errors import UnmixError
from ..export.graph_separator import as_graph_separator
from ..fileio import remove_stale_temporaries
from . import record
from .batcher import Batcher, batching
from .files import FileReport, separate_file
from .inputs import find_inputs, input_name
from .jobs import BatchListener, Job, SerializedListener
from .naming import FileNames, track_name
from .parallel import Stop, run_parallel
from .segments import SegmentPlan, plan_segments

if TYPE_CHECKING:
    from .segments import AnySeparator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutputOptions:
    """Where and how stems are written, and which part of each input is separated.

    Attributes:
        out_dir: the output folder.
        fmt, bits: output format and sample format (:data:`unmix.audio.FORMATS`).
        force: replace existing outputs (otherwise a stem made with the same settings is
            kept and one made otherwise stops that input).
        start, duration: part of each input to separate (seconds).
        filename: output path template under ``out_dir`` (:mod:`unmix.engine.naming`;
            Default: ``{model}/{track}/{stem}.{ext}``, ``{model}/{track}.{ext}`` for stems).
        model: the ``{model}`` of the template (the CLI passes the model's name).
        model_source: where the model came from (registry name or resolved path), recorded
            with the outputs so that two models of the same name are told apart.
        rename: output name → file name, e.g. ``{"residual": "no_vocals"}``.
        jobs: files separated at the same time, on threads sharing the one model.
        encoding: encoder settings (MP3 bit rate and preset).
        batch_size: segments per network call (:mod:`~unmix.engine.batcher`; Default:
            automatic, 1 on CPU); it does not change the stems, so it is not recorded.
    """

    out_dir: Path = Path("separated")
    fmt: str = "wav"
    bits: str | None = None
    force: bool = False
    start: float = 0.0
    duration: float | None = None
    filename: str | None = None
    model: str = "model"
    model_source: str = ""
    rename: Mapping[str, str] = field(default_factory=dict)
    jobs: int = 1
    encoding: EncodeOptions = field(default_factory=EncodeOptions)
    batch_size: int | None = None

    def names(self) -> FileNames:
        """The checked file name template (a one-line error for a bad one)."""
        output_format = audio_io.get_format(self.fmt)
        template = self.filename or output_format.default_filename
        return FileNames(template, output_format.ext, self.model, output_format.one_file)


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


def plan_batch(inputs: Sequence[str | Path], options: OutputOptions) -> BatchPlan:
    """Find the inputs and their output paths.

    Inputs that would write the same outputs, whose output path is too long for the file
    system or would leave the output folder, or that appear twice as stdin, become error
    lines; the rest become jobs.

    Raises:
        UnmixError: a bad ``filename`` template or format.
    """
    names = options.names()
    found, errors = find_inputs([Path(p) for p in inputs], options.out_dir)
    plan = BatchPlan(options, errors=errors, nb_inputs=len(found) + len(errors))
    taken: dict[Path, Path] = {}
    for path, sub in found:
        track = track_name(sub, input_name(path))
        try:
            destination = names.destination(options.out_dir, track)
            key = names.key(options.out_dir, track)
        except UnmixError as exc:
            plan.errors.append(f"{path}: {exc}")
            continue
        if key in taken:
            plan.errors.append(
                f"{path}: its stems would overwrite those of {taken[key]} in "
                f"{destination}; separate it in another call with a different --out-dir"
                + (" or a --filename with {track}" if "{track}" not in names.template else "")
            )
        else:
            taken[key] = path
            plan.jobs.append(Job(path, destination, track))
    return plan


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def _exists(output: Path) -> bool:
    try:
        return output.exists()
    except OSError:  # a name the file system refuses: the write reports it
        return False


@dataclass
class _Decision:
    """What to do with one job's outputs."""

    write: dict[Path, tuple[str, ...]] = field(default_factory=dict)
    kept: list[Path] = field(default_factory=list)
    conflict: str | None = None


def _decide(
    job: Job, files: dict[Path, tuple[str, ...]], settings: dict[str, Any], force: bool
) -> _Decision:
    """Per output: write it (missing, or ``force``), keep it (same settings) or refuse the
    whole input (made otherwise, or unknown: stems of two separations must not mix)."""
    decision = _Decision()
    for output, streams in files.items():
        if force or not _exists(output):
            decision.write[output] = streams
            continue
        old = record.recorded(output)
        if old == settings:
            decision.kept.append(output)
        elif decision.conflict is None:
            how = (
                "was made with other settings ("
                + "; ".join(record.differences(old, settings))
                + ")"
                if old is not None
                else f"exists and nothing records how it was made (no entry in {record.RECORD_NAME})"
            )
            decision.conflict = (
                f"{job.label}: {output} {how}; use --force to replace it, or another --out-dir "
                "or --filename"
            )
    log.debug("%s: write %s; keep %s", job.label, [str(p) for p in decision.write], decision.kept)
    return decision


def batch_settings(
    separator: AnySeparator, options: OutputOptions, plan: SegmentPlan, names: tuple[str, ...]
) -> dict[str, Any]:
    """Everything that decides what an output file holds (recorded beside it)."""
    output_format = audio_io.get_format(options.fmt)
    settings: dict[str, Any] = {
        "model": options.model,
        "model_source": options.model_source or options.model,
        "outputs": list(names),
        "targets": list(separator.targets),
        "niter": separator.wiener.niter,
        "softmask": separator.wiener.softmask,
        "residual": separator.wiener.residual,
        "wiener_win_len": separator.wiener.wiener_win_len,
        "start": options.start,
        "duration": options.duration,
        "segment": plan.segment,
        "overlap": plan.overlap,
        "format": options.fmt,
        "sample_format": output_format.sample_format(options.bits),
        **separator.settings_record(),  # shifts, ensemble members and weights (if any)
    }
    if options.fmt == "mp3":
        settings["mp3"] = [options.encoding.mp3_bitrate, options.encoding.mp3_preset]
    return record.normalized(settings)


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
    separator: AnySeparator, job: Job, options: OutputOptions, plan: SegmentPlan,
    listener: BatchListener, write: dict[Path, tuple[str, ...]], names: tuple[str, ...],
    batcher: Batcher | None = None,
) -> FileReport:  # fmt: skip
    with seekable_input(job.path, options.out_dir) as source:
        listener.started(job, _expected_seconds(source, options.start, options.duration))
        return separate_file(
            separator, source, next(iter(write)).parent, options.fmt, options.bits,
            options.start, options.duration, plan, listener.progress, outputs=write,
            names=names, options=options.encoding, batcher=batcher,
        )  # fmt: skip


def _message(job: Job, exc: BaseException) -> str:
    if isinstance(exc, UnmixError):
        text = str(exc)
    elif isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.strerror}" + (f": {exc.filename}" if exc.filename else "")
    else:
        text = f"unexpected {type(exc).__name__}: {exc}"
    return text if job.label in text else f"{job.label}: {text}"


def output_names(separator: AnySeparator, rename: Mapping[str, str]) -> tuple[str, ...]:
    """The separator's outputs as files call them; a one-line error if two coincide."""
    names = tuple(rename.get(n, n) for n in separator.output_names)
    if len(set(names)) != len(names):
        raise UnmixError(f"two outputs would have the same name: {names}")
    return names


def separate_files(
    separator: AnySeparator,
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
        options: output folder, format, file names, ``force``, part of each input, parallel
            ``jobs``, ``batch_size`` (Default: :class:`OutputOptions`).
        plan: segment geometry (Default: :func:`unmix.engine.segments.plan_segments`).
        listener: progress and result callbacks (Default: none); with ``jobs > 1`` they come
            from worker threads, one call at a time.

    Returns:
        a :class:`BatchResult`; ``failed`` counts every input that produced no stems for
        a reason other than existing outputs made with the same settings.

    Raises:
        UnmixError: bad options or an output folder that cannot be created (the inputs'
            own problems are reported per input).
    """
    batch = (
        inputs if isinstance(inputs, BatchPlan) else plan_batch(inputs, options or OutputOptions())
    )
    if batch.options.jobs < 1:
        raise UnmixError(f"jobs must be >= 1, got {batch.options.jobs}")
    runner = _Runner(separator, batch, plan or plan_segments(separator), listener)
    prepare_out_dir(batch.options.out_dir)
    remove_stale_temporaries(batch.options.out_dir)
    size = batch.options.batch_size
    with batching(separator, runner.plan, size, runner.stop) as runner.batcher:
        jobs, torch_threads = batch.options.jobs, as_graph_separator(separator) is None
        run_parallel(batch.jobs, runner.prepare, runner.run, jobs, runner.stop, torch_threads)
    return runner.result


class _Runner:
    """The state of one :func:`separate_files` call: decisions on this thread, jobs on
    worker threads (results and listener calls under one lock)."""

    def __init__(
        self, separator: AnySeparator, batch: BatchPlan, plan: SegmentPlan,
        listener: BatchListener | None,
    ) -> None:  # fmt: skip
        self.separator, self.options, self.plan = separator, batch.options, plan
        self.stop, self.lock = Stop(), threading.Lock()
        self.listener = SerializedListener(listener or BatchListener(), self.stop, self.lock)
        self.file_names = self.options.names()
        self.names = output_names(separator, self.options.rename)
        self.settings = batch_settings(separator, self.options, plan, self.names)
        self.result = BatchResult(failed=len(batch.errors), nb_inputs=batch.nb_inputs)
        self.claimed: dict[Path, Job] = {}
        self.inputs: dict[Path, str | None] = {}
        self.batcher: Batcher | None = None  # while the jobs run, if segments are batched

    def job_settings(self, job: Job) -> dict[str, Any]:
        """The batch's settings and which input (its fingerprint: a changed input with the
        same name does not match)."""
        with self.lock:
            if job.path not in self.inputs:  # once, before the job runs
                stdin = is_stdin(job.path)
                self.inputs[job.path] = None if stdin else record.fingerprint(job.path)
            return {**self.settings, "input": self.inputs[job.path]}

    def refusal(self, job: Job, files: dict[Path, tuple[str, ...]]) -> str | None:
        """Why ``job`` must not write ``files``, if it must not."""
        if not is_stdin(job.path) and any(_same_file(job.path, o) for o in files):
            return (
                f"{job.label}: its stems would replace the input itself; choose another --out-dir"
            )
        other = next((self.claimed[o] for o in files if o in self.claimed), None)
        if other is not None:
            return f"{job.label}: its stems would overwrite those of {other.label}"
        return None

    def prepare(self, job: Job) -> dict[Path, tuple[str, ...]] | None:
        """The outputs to write for ``job`` (None: nothing to run; failures reported)."""
        try:
            files = self.file_names.files(self.options.out_dir, job.track, self.names)
        except UnmixError as exc:
            self.fail(job, f"{job.label}: {exc}")
            return None
        for folder in {o.parent for o in files}:
            remove_stale_temporaries(folder)
        message = self.refusal(job, files)
        self.claimed.update(dict.fromkeys(files, job))
        decision = _decide(job, files, self.job_settings(job), self.options.force)
        message = message or decision.conflict
        if message is not None:
            self.fail(job, message)
            return None
        if not decision.write:
            self.listener.skipped(job, decision.kept[0])
            self.result.skipped.append(job)
            return None
        if decision.kept:
            self.listener.kept(job, decision.kept)
        return decision.write

    def fail(self, job: Job, message: str) -> None:
        self.listener.failed(job, message)
        with self.lock:
            self.result.failed += 1

    def run(self, job: Job, write: dict[Path, tuple[str, ...]]) -> None:
        """Separate ``job`` into ``write`` (on a worker thread when ``jobs > 1``)."""
        started = time.perf_counter()
        try:
            report = _run_job(
                self.separator, job, self.options, self.plan, self.listener, write, self.names,
                self.batcher,
            )  # fmt: skip
            record.record(report.outputs, self.job_settings(job))
        except Exception as exc:  # one broken file must not stop a batch
            self.fail(job, _message(job, exc))
        else:
            with self.lock:
                self.result.reports[job.path] = report
            self.listener.finished(job, report, time.perf_counter() - started)
