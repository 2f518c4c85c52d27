"""``unmix separate``: files and folders in, stems out (``OUT/<model>/<track>/<stem>.<ext>``).

Only arguments and printing live here; the batch (inputs, output paths, skipping, one
failure at a time) is :func:`unmix.engine.separate_files`.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, cast

from .. import audio as audio_io
from ..audio.sinks import MP3_BITRATES, MP3_PRESETS, EncodeOptions
from ..catalog.cli import add_engine_options, run_catalog
from ..choices import MAX_SHIFTS
from ..engine import (
    OVERLAP_SECONDS,
    SEGMENT_SECONDS,
    OutputOptions,
    plan_batch,
    plan_segments,
    prepare_out_dir,
    separate_files,
)
from ..engine.calls import device_of, resolve_batch_size
from ..engine.files import cpu_threads
from ..errors import UnmixError
from ..export.graph_separator import as_graph_separator
from ..hub.registry import DEFAULT_MODEL
from .common import (
    add_device_option,
    add_ensemble_options,
    add_precision_option,
    add_wiener_options,
    graph_from_args,
    is_one_graph,
    model_label,
    model_source,
    separator_from_args,
)
from .console import Console

if TYPE_CHECKING:
    from ..engine.segments import AnySeparator
    from ..separator import Separator

log = logging.getLogger(__name__)

EPILOG = """\
output layout:
  OUT/<model>/<track>/<stem>.<ext>  one file per stem (wav, flac, mp3); --filename changes
                                    the part after OUT/ (fields {model} {track} {stem} {ext})
  OUT/<model>/<track>.stem.mp4      --format stems: mixture, then every stem (AAC)
  <track> is the input's name; files found by walking a folder keep their sub-folders in it
  (live/song). Stems keep the input's sample rate (MP3: the nearest of 8-48 kHz), channel
  count (mono in, mono out) and length; inputs with more than two channels are refused.
  INPUT - (standard input), a pipe or a FIFO is read once into a temporary file beside the
  outputs; its track is called stdin for -.

re-runs:
  Each output folder records how its stems were made (.unmix.json). An existing stem made
  with the same model and settings is kept (the others are written); one made otherwise
  stops that input with an error, so that a folder never mixes two separations. --force
  replaces them. An input is never overwritten by its own stems.

levels:
  Default output is 32-bit float WAV: nothing is clipped or normalised. 16/24-bit, FLAC,
  MP3 and AAC outputs clip at full scale and warn with the number of clipped samples.
  With all targets and --niter >= 1 the stems add up to the input up to the Wiener
  filter's regulariser and the model's bandwidth (see docs/separation.md); --residual
  writes what the chosen targets leave out, so that stems + residual equal the input.

examples:
  unmix separate song.mp3                              (separated/umxl/song/vocals.wav ...)
  unmix separate music/ --format flac -o stems/ -j 2   (two files at a time)
  unmix separate song.wav --two-stems vocals           (karaoke: vocals + no_vocals)
  unmix separate song.wav -n umx-preview+umx-rt-preview  (ensemble: the stems averaged)
  unmix separate song.wav --mp3 --mp3-bitrate 192 --filename "{track}_{stem}.{ext}"
  ffmpeg -i video.mkv -f wav - | unmix separate -
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
        "inputs",
        nargs="+",
        type=Path,
        metavar="INPUT",
        help="audio files or folders (recursive); - reads standard input (stems named stdin)",
    )
    _model_options(p.add_argument_group("model"))
    _output_options(p.add_argument_group("output"))
    _processing_options(p.add_argument_group("processing"))
    add_engine_options(p.add_argument_group("engine (docs/catalog.md)"))
    p.set_defaults(run=run)


def _model_options(g: argparse._ArgumentGroup) -> None:
    g.add_argument(
        "-n",
        "--model",
        default=DEFAULT_MODEL,
        help=f"registry name (see 'unmix models'), model folder or a graph from 'unmix "
        "export' (FILE.onnx: runs on onnxruntime, without PyTorch); a+b averages an ensemble "
        f"(default: {DEFAULT_MODEL})",
    )
    g.add_argument(
        "--targets",
        nargs="+",
        default=None,
        metavar="NAME",
        help="targets to separate, e.g. vocals drums (default: all of the model's)",
    )
    g.add_argument(
        "--two-stems",
        default=None,
        metavar="STEM",
        help="only STEM and no_STEM (the input minus STEM, exactly), e.g. --two-stems vocals; "
        "the same as --targets STEM --residual with the residual named no_STEM",
    )
    add_wiener_options(g)
    add_ensemble_options(g)


def _output_options(o: argparse._ArgumentGroup) -> None:
    o.add_argument(
        "-o",
        "--out-dir",
        type=Path,
        default=Path("separated"),
        metavar="DIR",
        help="output folder (default: ./separated)",
    )
    o.add_argument(
        "--filename",
        default=None,
        metavar="TEMPLATE",
        help="output path under DIR with the fields {model} {track} {stem} {ext} (default: "
        "{model}/{track}/{stem}.{ext}; --format stems: {model}/{track}.{ext})",
    )
    o.add_argument(
        "--format",
        default="wav",
        choices=audio_io.OUTPUT_FORMATS,
        help=", ".join(f.help for f in audio_io.FORMATS.values()),
    )
    for fmt in ("flac", "mp3"):
        o.add_argument(
            f"--{fmt}", dest="format", action="store_const", const=fmt, help=f"--format {fmt}"
        )
    bits = o.add_mutually_exclusive_group()
    bits.add_argument(
        "--bits",
        default=None,
        choices=list(dict.fromkeys(b for bits in audio_io.BIT_DEPTHS.values() for b in bits)),
        help="sample format for wav (default: float) and flac (default: 24)",
    )
    bits.add_argument("--int24", dest="bits", action="store_const", const="24", help="--bits 24")
    bits.add_argument(
        "--float32", dest="bits", action="store_const", const="float", help="--bits float (wav)"
    )
    o.add_argument(
        "--mp3-bitrate",
        type=int,
        default=EncodeOptions.mp3_bitrate,
        metavar="KBPS",
        help=f"MP3 bit rate in kbit/s, constant (default: {EncodeOptions.mp3_bitrate}; one of "
        f"{', '.join(map(str, MP3_BITRATES))})",
    )
    o.add_argument(
        "--mp3-preset",
        type=int,
        default=EncodeOptions.mp3_preset,
        choices=MP3_PRESETS,
        metavar="N",
        help="MP3 encoder preset: 2 = best quality (default) ... 7 = fastest",
    )
    o.add_argument(
        "--force", action="store_true", help="replace existing outputs, whatever made them"
    )


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
    add_precision_option(r)
    r.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="separate N files at the same time, sharing one model in memory and the CPU "
        "threads (default: 1; memory grows with N)",
    )
    r.add_argument(
        "--batch-size",
        type=int,
        default=None,
        metavar="N",
        help="segments per network call, from one or several files (default: 1 on CPU, from "
        "free memory on CUDA, at most 16, and N for an .onnx model on --threads N: N "
        "segments side by side, one thread each); the stems do not change (docs/speed.md)",
    )
    r.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="CPU threads in all (default: PyTorch's choice, usually all cores); before "
        "version 0.2 this was --jobs",
    )


def _check_args(args: argparse.Namespace) -> None:
    finite = {"--start": args.start, "--duration": args.duration, "--segment": args.segment,
              "--overlap": args.overlap}  # fmt: skip
    for option, value in finite.items():
        if value is not None and not math.isfinite(value):
            raise UnmixError(f"{option} must be a finite number of seconds, got {value}")
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
        (1 <= args.shifts <= MAX_SHIFTS, f"--shifts must be 1 to {MAX_SHIFTS}, got {args.shifts}"),
        (
            args.batch_size is None or args.batch_size >= 1,
            f"--batch-size must be >= 1, got {args.batch_size}",
        ),
        (args.threads is None or args.threads >= 1, f"--threads must be >= 1, got {args.threads}"),
        (
            args.two_stems is None or (args.targets is None and not args.residual),
            "--two-stems STEM already means --targets STEM --residual; give only one of them",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise UnmixError(message)
    audio_io.output_subtype(args.format, args.bits)
    if args.two_stems is not None:
        args.targets, args.residual = [args.two_stems], True


def _options(args: argparse.Namespace) -> OutputOptions:
    return OutputOptions(
        args.out_dir, args.format, args.bits, args.force, args.start, args.duration,
        filename=args.filename, model=model_label(args.model),
        model_source=model_source(args.model),
        rename={"residual": f"no_{args.two_stems}"} if args.two_stems else {},
        jobs=args.jobs or 1, encoding=EncodeOptions(args.mp3_bitrate, args.mp3_preset),
        batch_size=args.batch_size,
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    _check_args(args)
    if args.engine == "ray":
        return run_catalog(args, _options(args))
    console = Console(args.quiet, parallel=(args.jobs or 1) > 1)
    graph = is_one_graph(args.model)  # run by onnxruntime: PyTorch is never imported
    if args.threads and not graph:
        import torch

        torch.set_num_threads(args.threads)
    options = _options(args)
    batch = plan_batch(args.inputs, options)
    if not batch.jobs and len(batch.errors) == 1:
        raise UnmixError(batch.errors[0])
    for message in batch.errors:
        console.error(message)
    if not batch.jobs:
        raise UnmixError("nothing to separate")
    prepare_out_dir(args.out_dir)  # before loading the model: fail early
    sep: AnySeparator = graph_from_args(args) if graph else separator_from_args(args)
    plan = plan_segments(sep, args.segment, args.overlap)
    size = resolve_batch_size(sep, plan, options.batch_size)  # the automatic one, once
    batch.options = options = dataclasses.replace(options, batch_size=size)
    jobs = f", {options.jobs} files at a time" if options.jobs > 1 else ""
    jobs += f", batches of up to {size} segments" if size > 1 else ""
    jobs += f", {args.precision}" if args.precision != "fp32" else ""
    console.note(
        f"model {args.model} on {_device(sep)} ({cpu_threads(sep)} threads{jobs}); segments "
        f"of {plan.segment / sep.sample_rate:.1f} s with {plan.overlap / sep.sample_rate:.1f} "
        "s cross-faded overlap"
    )
    log.debug("outputs %s; options %s", sep.output_names, options)
    if len(batch.jobs) > 1:
        console.overall = console.bar(len(batch.jobs), "files", "files", position=0)
    result = separate_files(sep, batch, plan=plan, listener=console)
    if console.overall is not None:
        console.overall.close()
    if result.failed and result.nb_inputs > 1:
        console.error(f"{result.failed} of {result.nb_inputs} inputs failed, see above")
    return 1 if result.failed else 0


def _device(separator: AnySeparator) -> str:
    """Where ``separator`` runs, as the note prints it (``cpu``, ``cuda:0``...)."""
    if as_graph_separator(separator) is not None:
        return "cpu"
    return str(device_of(cast("Separator", separator)))
