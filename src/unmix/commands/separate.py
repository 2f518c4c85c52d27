"""``unmix separate``: files and folders in, stems out (``OUT/<input name>/<target>.<ext>``)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from .. import audio as audio_io
from ..api import FileReport, separate_file
from ..apply import OVERLAP_SECONDS, SEGMENT_SECONDS, SegmentPlan, plan_segments
from ..errors import UnmixError
from ..registry import DEFAULT_MODEL
from ..separator import Separator
from .common import add_device_option, add_wiener_options, separator_from_args

EPILOG = """\
output layout:
  OUT/<input name>/<target>.<ext>   one file per target (wav, flac, mp3)
  OUT/<input name>.stem.mp4         --format stems: mixture, then every target (AAC)
  Files found by walking a folder keep their sub-folders under OUT. Stems keep the input's
  sample rate, channel count (mono in, mono out) and length; inputs with more than two
  channels are refused. Existing outputs are skipped unless --force is given.

levels:
  Default output is 32-bit float WAV: nothing is clipped or normalised. 16/24-bit, FLAC,
  MP3 and AAC outputs clip at full scale and warn with the number of clipped samples.
  With all targets and --niter >= 1 the stems add up to the input up to the Wiener
  filter's regulariser and the model's bandwidth (see docs/separation.md); --residual
  writes what the chosen targets leave out, so that stems + residual equal the input.

examples:
  unmix separate song.mp3
  unmix separate music/ --format flac --out-dir stems/
  unmix separate song.wav --targets vocals --residual      (karaoke: vocals + residual)
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "separate",
        help="separate songs into stems",
        description="Separate audio files (any format FFmpeg decodes) into stems, in "
        "segments of bounded memory.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "inputs", nargs="+", type=Path, metavar="INPUT", help="audio files or folders (recursive)"
    )
    _model_options(p.add_argument_group("model"))
    _output_options(p.add_argument_group("output"))
    _processing_options(p.add_argument_group("processing"))
    p.set_defaults(run=run)


def _model_options(g: argparse._ArgumentGroup) -> None:
    g.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"registry name (see 'unmix models') or model folder (default: {DEFAULT_MODEL})",
    )
    g.add_argument(
        "--targets",
        nargs="+",
        default=None,
        metavar="NAME",
        help="targets to separate, e.g. vocals drums (default: all of the model's)",
    )
    add_wiener_options(g)


def _output_options(o: argparse._ArgumentGroup) -> None:
    o.add_argument(
        "--out-dir",
        type=Path,
        default=Path("separated"),
        metavar="DIR",
        help="output folder (default: ./separated)",
    )
    o.add_argument(
        "--format",
        default="wav",
        choices=audio_io.OUTPUT_FORMATS,
        help="wav (default), flac, mp3 (320 kbit/s), or stems: one .stem.mp4 per input",
    )
    o.add_argument(
        "--bits",
        default=None,
        choices=["float", "16", "24"],
        help="sample format for wav (default: float) and flac (default: 24)",
    )
    o.add_argument("--force", action="store_true", help="overwrite existing outputs")


def _processing_options(r: argparse._ArgumentGroup) -> None:
    r.add_argument(
        "--start", type=float, default=0.0, metavar="SEC", help="start at SEC seconds (default 0)"
    )
    r.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="SEC",
        help="separate only SEC seconds (default: to the end)",
    )
    r.add_argument(
        "--segment",
        type=float,
        default=SEGMENT_SECONDS,
        metavar="SEC",
        help="segment length; memory grows with it, not with the song "
        f"(default: {SEGMENT_SECONDS:g}, rounded to Wiener windows)",
    )
    r.add_argument(
        "--overlap",
        type=float,
        default=OVERLAP_SECONDS,
        metavar="SEC",
        help=f"cross-faded overlap between segments (default: {OVERLAP_SECONDS:g})",
    )
    add_device_option(r)
    r.add_argument(
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="CPU threads for the separation (default: PyTorch's choice, usually all cores)",
    )
    r.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bars and no notes, only errors"
    )


@dataclass(frozen=True)
class Job:
    """One input file and where its stems go."""

    path: Path
    destination: Path  # folder, or the .stem.mp4 file
    outputs: tuple[Path, ...]


def input_name(path: Path) -> str:
    """``song`` for ``song.mp3`` and for ``song.stem.mp4``."""
    if path.name.lower().endswith(".stem.mp4"):
        return path.name[: -len(".stem.mp4")]
    return path.stem


def _is_inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def find_inputs(inputs: list[Path], out_dir: Path) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Files to separate as ``(file, sub-folder under OUT)``, and one error per bad input.

    Folders are walked recursively for audio file names (hidden files and anything inside
    ``out_dir`` are left out); files given by name are taken whatever their ending.
    """
    found: list[tuple[Path, Path]] = []
    errors: list[str] = []
    for item in inputs:
        if item.is_dir():
            files = sorted(
                f
                for f in item.rglob("*")
                if f.is_file()
                and audio_io.is_audio_name(f)
                and not any(part.startswith(".") for part in f.relative_to(item).parts)
                and not _is_inside(f, out_dir)
            )
            if not files:
                errors.append(f"{item}: no audio files found in this folder")
            found.extend((f, f.parent.relative_to(item)) for f in files)
        elif item.exists():
            found.append((item, Path()))
        else:
            errors.append(f"{item}: no such file or folder")
    return found, errors


def plan_jobs(
    found: list[tuple[Path, Path]], out_dir: Path, names: tuple[str, ...], fmt: str
) -> tuple[list[Job], list[str]]:
    """Output paths per input; inputs that would write the same outputs are errors."""
    jobs: list[Job] = []
    errors: list[str] = []
    taken: dict[Path, Path] = {}
    for path, sub in found:
        name = input_name(path)
        if fmt == "stems":
            destination = out_dir / sub / f"{name}{audio_io.output_suffix(fmt)}"
            outputs: tuple[Path, ...] = (destination,)
        else:
            destination = out_dir / sub / name
            outputs = tuple(destination / f"{n}.{fmt}" for n in names)
        if destination in taken:
            errors.append(
                f"{path}: its stems would overwrite those of {taken[destination]} in "
                f"{destination}; separate it in another call with a different --out-dir"
            )
            continue
        taken[destination] = path
        jobs.append(Job(path, destination, outputs))
    return jobs, errors


def _check_args(args: argparse.Namespace) -> None:
    checks = [
        (args.niter >= 0, f"--niter must be >= 0, got {args.niter}"),
        (args.wiener_win_len >= 0, f"--wiener-win-len must be >= 0, got {args.wiener_win_len}"),
        (args.start >= 0, f"--start must be >= 0, got {args.start}"),
        (
            args.duration is None or args.duration > 0,
            f"--duration must be > 0, got {args.duration}",
        ),
        (
            0 < args.overlap < args.segment,
            f"need 0 < --overlap < --segment, got {args.overlap} and {args.segment}",
        ),
        (args.jobs is None or args.jobs >= 1, f"--jobs must be >= 1, got {args.jobs}"),
    ]
    for ok, message in checks:
        if not ok:
            raise UnmixError(message)
    audio_io.output_subtype(args.format, args.bits)


def _prepare_out_dir(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UnmixError(
            f"cannot create output folder {out_dir}: {exc.strerror or exc}; choose another "
            "--out-dir"
        ) from exc
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise UnmixError(f"output folder {out_dir} is not writable; choose another --out-dir")


class Console:
    """Notes, errors and progress bars on stderr; bars only on a terminal and not --quiet."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bars = not quiet and sys.stderr.isatty()

    def note(self, message: str) -> None:
        if not self.quiet:
            tqdm.write(f"unmix: {message}", file=sys.stderr)

    def error(self, message: str) -> None:
        tqdm.write(f"unmix: error: {message}", file=sys.stderr)

    def result(self, message: str) -> None:
        tqdm.write(message, file=sys.stdout)

    def bar(self, total: float | None, desc: str, unit: str, position: int) -> tqdm:
        return tqdm(
            total=total,
            desc=desc,
            unit=unit,
            position=position,
            leave=False,
            disable=not self.bars,
            dynamic_ncols=True,
            file=sys.stderr,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} {unit} "
            "[{elapsed}<{remaining}]",
        )


def _expected_seconds(path: Path, start: float, duration: float | None) -> float | None:
    try:
        total = audio_io.info(path).duration
    except UnmixError:
        return None  # the separation itself reports the problem
    if not total:
        return None
    rest = max(total - start, 0.0)
    return min(rest, duration) if duration is not None else rest


def _separate_one(
    job: Job, sep: Separator, plan: SegmentPlan, args: argparse.Namespace, console: Console
) -> FileReport:
    seconds = _expected_seconds(job.path, args.start, args.duration)
    name = job.path.name if len(job.path.name) <= 40 else job.path.name[:37] + "..."
    with console.bar(seconds, name, "s", position=1) as bar:
        return separate_file(
            sep,
            job.path,
            job.destination,
            fmt=args.format,
            bits=args.bits,
            start=args.start,
            duration=args.duration,
            plan=plan,
            progress=bar.update,
        )


def _summary(job: Job, report: FileReport, elapsed: float) -> str:
    speed = report.seconds / elapsed if elapsed > 0 else float("inf")
    line = (
        f"{job.path} -> {job.destination} ({report.seconds:.1f} s at {report.sample_rate} Hz, "
        f"{report.nb_channels} ch, {speed:.1f}x real time)"
    )
    if report.residual_db is not None:
        line += f"; residual {report.residual_db:.1f} dB re mixture"
    return line


def run(args: argparse.Namespace) -> int:
    _check_args(args)
    console = Console(args.quiet)
    if args.jobs:
        torch.set_num_threads(args.jobs)
    found, failures = find_inputs(args.inputs, args.out_dir)
    if not found and len(failures) == 1:
        raise UnmixError(failures[0])
    for message in failures:
        console.error(message)
    if not found:
        raise UnmixError("nothing to separate")
    _prepare_out_dir(args.out_dir)
    sep = separator_from_args(args)
    plan = plan_segments(sep, args.segment, args.overlap)
    jobs, clashes = plan_jobs(found, args.out_dir, sep.output_names, args.format)
    for message in clashes:
        console.error(message)
    device = next(iter(sep.parameters())).device
    console.note(
        f"model {args.model} on {device} ({torch.get_num_threads()} threads); segments of "
        f"{plan.segment / sep.sample_rate:.1f} s with {plan.overlap / sep.sample_rate:.1f} s "
        "cross-faded overlap"
    )
    failed = len(failures) + len(clashes)
    failed += _run_jobs(jobs, sep, plan, args, console)
    if failed and len(found) + len(failures) > 1:
        console.error(f"{failed} of {len(found) + len(failures)} inputs failed, see above")
    return 1 if failed else 0


def _run_jobs(
    jobs: list[Job], sep: Separator, plan: SegmentPlan, args: argparse.Namespace, console: Console
) -> int:
    failed = 0
    overall = console.bar(len(jobs), "files", "files", position=0) if len(jobs) > 1 else None
    for job in jobs:
        existing = [p for p in job.outputs if p.exists()]
        if existing and not args.force:
            console.note(f"skipping {job.path}: {existing[0]} exists (use --force to overwrite)")
        else:
            started = time.perf_counter()
            try:
                report = _separate_one(job, sep, plan, args, console)
            except UnmixError as exc:
                console.error(str(exc) if str(job.path) in str(exc) else f"{job.path}: {exc}")
                failed += 1
            except Exception as exc:  # one broken file must not stop a batch
                console.error(f"{job.path}: unexpected {type(exc).__name__}: {exc}")
                failed += 1
            else:
                for warning in report.warnings:
                    console.note(f"warning: {job.path}: {warning}")
                console.result(_summary(job, report, time.perf_counter() - started))
        if overall is not None:
            overall.update(1)
    if overall is not None:
        overall.close()
    return failed
