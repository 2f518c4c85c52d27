"""``unmix stream``: separate a file block by block, as a real-time application would.

Only arguments and printing live here; the work is :mod:`unmix.realtime` (design and
numbers: docs/realtime.md).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

from .. import audio as audio_io
from ..errors import UnmixError
from ..fileio import atomic_write_text
from ..realtime import DEFAULT_STREAM_MODEL, CausalWiener, StreamSeparator
from ..realtime.files import stem_folder, stream_file
from ..realtime.live import run_live
from ..realtime.pacing import MAX_BUFFER_BLOCKS, Pacer, check_buffer_blocks, stream_report
from ..realtime.packed import STREAM_PRECISIONS
from ..realtime.wiener import MAX_CAUSAL_NITER

EPILOG = """\
modes:
  causal (default): a unidirectional model (umx-rt-preview) runs frame by frame; latency
    n_fft - 1 samples (46 ms for umx-rt-preview), plus your audio device's buffer.
  --lookahead SEC: any model (umxhq, umxl, ...) separates a chunk at a time, seeing SEC of
    future audio; latency = chunk + lookahead. A bidirectional UMX carries its forward
    LSTM states and the Wiener statistics from chunk to chunk (1 s: >= 20 dB from offline);
    other models, or --context, separate windows of past context + chunk + lookahead.
    Paced (--realtime, sound cards) with blocks shorter than the chunk (--background auto;
    the default block, the model's hop, is), each chunk is computed on a worker thread
    while the next blocks come in: one more chunk of latency, the same stems, and no block
    waits for a chunk's compute as long as one chunk computes within one chunk's duration.

output:
  OUT/<input name>/<target>.<ext>, shifted back by the latency so that the stems line up
  with the input, at the input's rate. Existing outputs are kept unless --force.

examples:
  unmix stream song.wav --report timing.json
  unmix stream song.wav --realtime --block 512
  unmix stream song.wav --realtime --buffer-blocks 2   (deadline two blocks after arrival)
  unmix stream song.wav --model umxhq --lookahead 1.0
  unmix stream song.wav --model umxhq --lookahead 1.0 --realtime --block 1024
  unmix stream --input-device default --output-device default --play vocals   (needs unmix[live])
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "stream",
        help="real-time separation: a file (or a sound card) block by block",
        description="Separate block by block with bounded latency (docs/realtime.md).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", nargs="?", type=Path, metavar="IN", help="audio file")
    _model_options(p.add_argument_group("model"))
    _stream_options(p.add_argument_group("streaming"))
    _output_options(p.add_argument_group("output"))
    _live_options(p.add_argument_group("live audio (optional extra: pip install 'unmix[live]')"))
    p.set_defaults(run=run)


def _model_options(m: argparse._ArgumentGroup) -> None:
    m.add_argument(
        "-n",
        "--model",
        default=DEFAULT_STREAM_MODEL,
        help=f"registry name or model folder (default: {DEFAULT_STREAM_MODEL})",
    )
    m.add_argument(
        "--targets",
        nargs="+",
        default=None,
        metavar="NAME",
        help="targets to separate (default: all of the model's)",
    )
    m.add_argument("--residual", action="store_true", help="also output 'residual'")
    m.add_argument(
        "--niter",
        type=int,
        default=1,
        metavar="N",
        help=f"causal Wiener EM iterations, 0..{MAX_CAUSAL_NITER} (default: 1)",
    )
    m.add_argument("--softmask", action="store_true", help="start the Wiener filter from masks")
    m.add_argument(
        "--wiener-memory",
        type=float,
        default=4.0,
        metavar="SEC",
        help="time constant of the causal Wiener covariances (default: 4)",
    )


def _stream_options(s: argparse._ArgumentGroup) -> None:
    s.add_argument(
        "--block",
        type=int,
        default=None,
        metavar="N",
        help="samples per block at the model rate (default: the model's hop)",
    )
    s.add_argument(
        "--lookahead",
        type=float,
        default=None,
        metavar="SEC",
        help="lookahead mode (any model): seconds of future audio per window",
    )
    s.add_argument(
        "--chunk",
        type=float,
        default=0.5,
        metavar="SEC",
        help="lookahead mode: seconds separated per window (default: 0.5)",
    )
    s.add_argument(
        "--context",
        type=float,
        default=None,
        metavar="SEC",
        help="lookahead mode: separate windows with SEC of past context instead of carrying "
        "state (default: a bidirectional UMX carries its state; other models take the "
        "lookahead, at least one chunk; docs/realtime.md)",
    )
    s.add_argument(
        "--background",
        default="auto",
        choices=("auto", "on", "off"),
        help="lookahead mode: compute each chunk on a worker thread while the next blocks "
        "come in, for one more chunk of latency (auto: when paced, --realtime or a sound "
        "card, and --block is shorter than the chunk; docs/realtime.md)",
    )
    s.add_argument(
        "--precision",
        default="fp32",
        choices=STREAM_PRECISIONS,
        help="causal network weights: fp32 (default), fp16 (half the memory traffic, "
        "float32 arithmetic) or int8 (a quarter); docs/realtime.md",
    )
    s.add_argument(
        "--realtime",
        action="store_true",
        help="pace the input at the audio rate and count overruns",
    )
    s.add_argument(
        "--buffer-blocks",
        type=int,
        default=None,
        metavar="N",
        help=f"output periods of the (modelled) sound card, 1..{MAX_BUFFER_BLOCKS}: a block is "
        "due N blocks after it arrived; each period beyond the first adds one block of output "
        "latency (default: 1; live audio: the device's default buffering)",
    )
    s.add_argument(
        "--report",
        type=Path,
        default=None,
        metavar="FILE.json",
        help="write latency, block timing (p50/p99/max) and overruns as JSON",
    )
    s.add_argument(
        "--threads",
        type=int,
        default=1,
        metavar="N",
        help="CPU threads for the model (default: 1, as in an audio callback)",
    )


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
        "--format",
        default="wav",
        choices=audio_io.OUTPUT_FORMATS,
        help="output format (default: wav)",
    )
    o.add_argument("--bits", default=None, help="bit depth / sample format of the format")
    o.add_argument("--force", action="store_true", help="overwrite existing outputs")


def _live_options(live: argparse._ArgumentGroup) -> None:
    live.add_argument(
        "--input-device",
        default=None,
        metavar="DEV",
        help="record from this sound-card input instead of a file",
    )
    live.add_argument(
        "--output-device",
        default=None,
        metavar="DEV",
        help="play one target on this output (with --input-device)",
    )
    live.add_argument("--play", default=None, metavar="TARGET",
                      help="the target to play (default: the first)")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    if args.threads < 1:
        raise UnmixError(f"--threads must be >= 1, got {args.threads}")
    buffers = check_buffer_blocks(1 if args.buffer_blocks is None else args.buffer_blocks)
    torch.set_num_threads(args.threads)
    live = args.input_device is not None or args.output_device is not None
    if live == (args.input is not None):
        raise UnmixError("give either an input file IN or --input-device (live audio)")
    if args.input is not None and not args.input.is_file():
        raise UnmixError(f"{args.input} is not a file")
    channels = None if live else audio_io.info(args.input).nb_channels
    wiener = CausalWiener(args.niter, args.softmask, args.residual, args.wiener_memory)
    if args.background == "on" and args.lookahead is None:
        raise UnmixError("--background on is for lookahead mode: give --lookahead SEC too")
    stream = StreamSeparator(
        args.model, lookahead=args.lookahead, chunk=args.chunk, context=args.context,
        nb_channels=channels,
        wiener=wiener, targets=args.targets, precision=args.precision,
    )  # fmt: skip
    block = args.block or stream.separator.config.n_hop
    if not 1 <= block <= 10 * stream.sample_rate:
        raise UnmixError(f"--block must be 1..{10 * stream.sample_rate} samples, got {block}")
    if _background(args.background, stream, block, paced=args.realtime or live):
        stream = StreamSeparator(
            stream.separator, lookahead=args.lookahead, chunk=args.chunk, context=args.context,
            nb_channels=channels, background=True,
        )  # fmt: skip
    pacer = Pacer(block / stream.sample_rate, realtime=args.realtime and not live,
                  buffer_blocks=buffers)  # fmt: skip
    info = {"model": str(args.model), "lookahead_s": args.lookahead, "threads": args.threads,
            "precision": stream.precision, **_lookahead_info(stream)}  # fmt: skip
    if live:
        run_live(stream, block, pacer, args.input_device, args.output_device, args.play,
                 args.buffer_blocks)  # fmt: skip
    else:
        _run_file(args, stream, block, pacer)
    report = stream_report(pacer, stream.latency, block, stream.sample_rate, info)
    if stream.background:
        report["chunk_waits"] = stream.waits
        report["worker_priority"] = stream.worker_priority
    if not args.quiet:
        print(_summary_line(report))
    if args.report is not None:
        atomic_write_text(args.report, json.dumps(_finite(report), indent=2) + "\n")
    return 0


def _background(choice: str, stream: StreamSeparator, block: int, paced: bool) -> bool:
    """Whether to compute the chunks in the background: ``on``, or ``auto`` in lookahead
    mode, paced (blocks have deadlines), with blocks shorter than a chunk (else one block's
    call would compute a chunk). Unpaced, the worker would only add latency."""
    chunk = getattr(stream.engine, "chunk", None)  # lookahead engines only
    if chunk is None or choice == "off":
        return False
    return choice == "on" or (paced and block < chunk)


def _lookahead_info(stream: StreamSeparator) -> dict[str, object]:
    """What makes up the latency in lookahead mode (report fields; empty if causal)."""
    chunk = getattr(stream.engine, "chunk", None)
    if chunk is None:
        return {}
    rate = stream.sample_rate
    return {
        "chunk_samples": chunk,
        "lookahead_samples": stream.engine.lookahead,  # type: ignore[union-attr]
        "background": stream.background,
        "background_latency_samples": stream.background_latency,
        "background_latency_ms": 1000.0 * stream.background_latency / rate,
    }


def _run_file(args: argparse.Namespace, stream: StreamSeparator, block: int, pacer: Pacer) -> None:
    fmt = audio_io.get_format(args.format)
    folder = stem_folder(args.input, args.out_dir)
    destination = folder.with_name(folder.name + fmt.suffix) if fmt.one_file else folder
    existing = [p for p in fmt.files(destination, stream.output_names) if p.exists()]
    if existing and not args.force:
        raise UnmixError(f"{existing[0]} exists; add --force to overwrite it")
    result = stream_file(stream, args.input, destination, args.format, args.bits, block, pacer)
    for warning in result.warnings:
        print(f"unmix: {warning}")
    if not args.quiet:
        print(f"wrote {len(result.outputs)} files for {result.seconds:.1f} s: {destination}")


def _summary_line(report: dict[str, object]) -> str:
    """The one-line timing summary: compute, and with --realtime overruns and lateness."""
    line = (
        f"latency {report['latency_samples']} samples ({report['latency_ms']:.1f} ms"
        f"{_latency_parts(report)}), output latency {report['output_latency_ms']:.1f} ms with "
        f"{report['buffer_blocks']} output block(s); "
        f"{report['blocks']} blocks of {report['block_samples']} samples "
        f"({report['block_ms']:.1f} ms): compute p50 {report['p50_ms']:.2f} ms, "
        f"p99 {report['p99_ms']:.2f} ms, max {report['max_ms']:.2f} ms"
    )
    if report["overruns"] is not None:
        line += f"; {report['overruns']} overruns"
    if report["realtime"]:
        due = "the next block" if report["buffer_blocks"] == 1 else "its deadline"
        line += (
            f" (work ending after {due} was due, {report['buffer_blocks']} block(s) after its "
            f"arrival); response p99 {report['response_p99_ms']:.2f} ms, max "
            f"{report['response_max_ms']:.2f} ms; wake-up p99 {report['wake_p99_ms']:.2f} ms; "
            f"{report['input_waits']} input waits; priority {report['priority']}"
        )
        if report.get("worker_priority"):
            line += f" (chunk worker: {report['worker_priority']})"
    if report["slow_blocks"]:
        line += (
            f"; {report['slow_blocks']} blocks computed longer than a block "
            f"({report['slow_blocks_off_cpu']} of them mostly off the CPU)"
        )
    if report.get("steal_ms"):
        line += f"; the host stole {report['steal_ms']:.0f} ms of CPU time"
    return line


def _latency_parts(report: dict[str, object]) -> str:
    """Lookahead mode: what the latency is made of, and the chunks' own deadline."""
    if "chunk_samples" not in report:
        return ""
    ms = 1000.0 / float(report["sample_rate"])  # type: ignore[arg-type]
    chunk, ahead = report["chunk_samples"], report["lookahead_samples"]
    parts = f": chunk {chunk * ms:.1f} ms + lookahead {ahead * ms:.1f} ms"  # type: ignore[operator]
    if not report["background"]:
        return parts + ", each chunk computed in the call of the block that completes it"
    return (
        f"{parts} + {report['background_latency_ms']:.1f} ms: each chunk computed in the "
        f"background, due one chunk after it is complete; {report.get('chunk_waits', 0)} "
        "blocks waited for one"
    )


def _finite(report: dict[str, object]) -> dict[str, object]:
    """JSON has no NaN/inf: such values become null."""
    return {
        k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in report.items()
    }
