"""Lookahead mode with blocks shorter than a chunk: paced runs with and without background
chunks (docs/realtime.md, "Small blocks in lookahead mode").

  OMP_NUM_THREADS=1 python benchmarks/bench_lookahead_blocks.py [--repeats 2]
      [--input examples/nightowl-preview.m4a] [--blocks 512 1024 2048] [--no-umxhq-size]

What ``unmix stream IN --realtime --lookahead 1 --chunk 0.5 --block N`` does (reader,
paced compute and writer threads, warm-up, real-time priority where permitted), run
in-process on the bundled example clip (6.8 s), one intra-op thread: ``umx-preview``
(n_fft 4096, hidden 128) at each block size, and a random-weight umxhq-size bidirectional
UMX (hidden 512, 3 layers, 4 targets) at block 1024, each with ``--background off`` (the
chunk computed in the call whose block completes it) and ``on`` (a worker thread, one more
chunk of latency), interleaved (off, on, off, on, ...). About 2 minutes.

Per run: overruns (work ending after the next block was due), response p99 and max (end
of a block's work minus its arrival), compute p99 per call, calls that waited for the
worker, and the host's steal over the run. The table gives the median over the repeats.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from unmix import audio as audio_io
from unmix.hub.loading import load_separator
from unmix.realtime import StreamSeparator
from unmix.realtime.files import stream_file
from unmix.realtime.pacing import Pacer, stream_report
from unmix.separator import Separator

sys.path.insert(0, str(Path(__file__).parent))
from bench_lookahead import umxhq_size_bidirectional

LOOKAHEAD, CHUNK = 1.0, 0.5
FIELDS = ("overruns", "response_p99_ms", "response_max_ms", "p99_ms", "chunk_waits", "steal_ms")


def paced_run(separator: Separator, clip: Path, block: int, background: bool) -> dict[str, float]:
    """One ``unmix stream --realtime`` run; the report's figures."""
    channels = audio_io.info(clip).nb_channels
    stream = StreamSeparator(separator, lookahead=LOOKAHEAD, chunk=CHUNK, nb_channels=channels,
                             background=background)  # fmt: skip
    pacer = Pacer(block / stream.sample_rate, realtime=True)
    with tempfile.TemporaryDirectory() as out:
        stream_file(stream, clip, Path(out) / "stems", "wav", None, block, pacer)
    report = stream_report(pacer, stream.latency, block, stream.sample_rate, {})
    report["chunk_waits"] = stream.waits
    report["steal_ms"] = report["steal_ms"] or 0.0
    figures = {k: float(report[k]) for k in FIELDS}  # type: ignore[arg-type]
    figures["blocks"] = float(report["blocks"])  # type: ignore[arg-type]
    figures["latency_ms"] = float(stream.latency_ms)
    return figures


def main() -> None:
    torch.set_num_threads(1)
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--input", type=Path, default=Path("examples/nightowl-preview.m4a"))
    p.add_argument("--blocks", type=int, nargs="+", default=[512, 1024, 2048])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--no-umxhq-size", action="store_true")
    args = p.parse_args()
    models = [("umx-preview", load_separator("umx-preview", None, None, "cpu", progress=False),
               args.blocks)]  # fmt: skip
    if not args.no_umxhq_size:
        models.append(("umxhq-size (random)", umxhq_size_bidirectional(), [1024]))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} intra-op thread, "
          f"lookahead {LOOKAHEAD} s, chunk {CHUNK} s, {args.input.name}", flush=True)  # fmt: skip
    results: dict[tuple[str, int, bool], list[dict[str, float]]] = {}
    t0 = time.perf_counter()
    for repeat in range(args.repeats):
        for name, separator, blocks in models:
            for block in blocks:
                for background in (False, True):
                    run = paced_run(separator, args.input, block, background)
                    results.setdefault((name, block, background), []).append(run)
                    print(f"  run {repeat + 1}: {name} block {block} background "
                          f"{'on ' if background else 'off'}: "
                          + ", ".join(f"{k} {run[k]:.1f}" for k in ("blocks", *FIELDS)),
                          flush=True)  # fmt: skip
    print(f"({time.perf_counter() - t0:.0f} s; medians over {args.repeats} runs)\n")
    print("| model | block | background | latency (ms) | overruns / blocks | response p99 (ms) "
          "| response max (ms) | compute p99 (ms) | calls that waited | steal (ms) |")  # fmt: skip
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for (name, block, background), runs in results.items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"| {name} | {block} | {'on' if background else 'off'} | {med['latency_ms']:.0f} "
              f"| {med['overruns']:g} / {med['blocks']:g} | {med['response_p99_ms']:.1f} "
              f"| {med['response_max_ms']:.1f} | {med['p99_ms']:.1f} | {med['chunk_waits']:g} "
              f"| {med['steal_ms']:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
