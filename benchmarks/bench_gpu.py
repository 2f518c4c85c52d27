"""Batched separation (``--batch-size``): real-time factor of ``unmix separate``, file to files.

umxhq-size model with random weights (4 targets, hidden 512; speed does not depend on the
values), a long file of real music (the MUSDB18 preview mixtures of ../shared/data back to
back, or the bundled clip, looped with the polarity flipped on every other pass), separated
by :func:`unmix.engine.separate_files` into float WAV stems with each batch size in turn
(interleaved repeats, medians), and by today's path ("today": no batcher, one segment at a
time on the file's thread). Also printed: the share of the wall time the networks were busy
(the rest is decoding, cross-fading and writing that the batches did not hide), the CPU time
per second of audio (robust on a shared CPU), the peak accelerator memory, the batches that
ran; on CUDA a row with the target networks one after another instead of on their own CUDA
streams and one waiting for full batches (the CPU policy) instead of running what is queued
whenever the GPU is free; and the "pipeline" row: the same file with the networks replaced by a copy, i.e.
the most the reading and writing around them allow on this machine (``--out`` on a faster
disk, e.g. /dev/shm, shows what the disk costs).

One command on a GPU machine (the issue's goal: ≥ 300× real time on an H100)::

    python benchmarks/bench_gpu.py                      # CUDA: 10 min file, batch 1 4 8 16

On a CPU it runs small (here, to show it works, and that batching does not slow a CPU)::

    OMP_NUM_THREADS=1 python benchmarks/bench_gpu.py --seconds 90 --segment 15 --batch 1 2 4
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

REPO = Path(__file__).resolve().parents[1]
try:
    import unmix  # noqa: F401
except ImportError:  # a bare checkout: use its sources
    sys.path.insert(0, str(REPO / "src"))

from unmix import audio as audio_io  # noqa: E402
from unmix.config import CONFIGS  # noqa: E402
from unmix.device import pick_device  # noqa: E402
from unmix.engine import (  # noqa: E402
    OutputOptions,
    plan_segments,
    segments,
    separate_files,
)
from unmix.engine import batch as engine_batch  # noqa: E402
from unmix.engine import batcher as batching  # noqa: E402
from unmix.models import umx  # noqa: E402
from unmix.models.umx import UMX  # noqa: E402
from unmix.separator import Separator  # noqa: E402

PREVIEW = REPO.parent / "shared" / "data" / "musdb18-preview" / "train"
RATE = 44100


def music_blocks(seconds: float) -> Iterator[np.ndarray]:
    """``(2, n)`` blocks of real music at 44.1 kHz, ``seconds`` long in all."""
    clips = sorted(PREVIEW.glob("*.stem.mp4"))[:20] or [REPO / "examples" / "nightowl-preview.m4a"]
    decoded = []
    for clip in clips:
        audio, rate = audio_io.read(clip)
        decoded.append(audio if rate == RATE else audio_io.resample(audio, rate, RATE))
    remaining, loop = int(seconds * RATE), 0
    while remaining > 0:
        for audio in decoded:
            block = audio[:, :remaining] * (1.0 if loop % 2 == 0 else -1.0)
            remaining -= block.shape[1]
            yield block
            if remaining <= 0:
                return
        loop += 1


def write_music(path: Path, seconds: float) -> Path:
    with sf.SoundFile(path, "w", RATE, 2, "FLOAT", format="WAV") as f:
        for block in music_blocks(seconds):
            f.write(block.T)
    return path


def umxhq(device: torch.device, seed: int = 0) -> Separator:
    """umxhq-size random weights (the official architecture and STFT)."""
    torch.manual_seed(seed)
    config = CONFIGS["umxhq"]
    return Separator(UMX.from_config(config), config).freeze().to(device)


class Meter:
    """The batcher's batch function, counting the batches and the time the networks are busy."""

    def __init__(self, copy_only: bool = False) -> None:
        self.sizes: list[int] = []
        self.busy = 0.0
        self.copy_only = copy_only

    def __call__(self, separator: Separator, segments: list[np.ndarray]) -> list[np.ndarray]:
        started = time.perf_counter()
        if self.copy_only:  # no network: stems are copies of the mixture
            n = len(separator.output_names)
            out = [np.repeat(s[None], n, axis=0) for s in segments]
        else:
            out = batching.separate_batch(
                separator, segments
            )  # ends with a copy to the CPU: synchronised
        self.busy += time.perf_counter() - started
        self.sizes.append(len(segments))
        return out


def run_once(
    sep: Separator, files: list[Path], out: Path, batch: int, jobs: int, segment: float,
    mode: str = "batcher",
) -> dict[str, float | list[int]]:  # fmt: skip
    """One separation of ``files`` with ``batch`` segments per network call.

    ``mode``: ``batcher`` (the batcher thread, for every size, 1 included), ``serial`` (the
    same, target networks not on CUDA streams), ``fill`` (the same, waiting for full batches
    as on a CPU instead of running what is queued whenever the GPU is free), ``today`` (no batcher: one segment at a time
    on the job's thread, what ``--batch-size 1`` does) or ``pipeline`` (the batcher with the
    networks replaced by a copy)."""
    meter = Meter(copy_only=mode == "pipeline")

    @contextlib.contextmanager
    def forced(separator, plan, requested, stop=None):  # type: ignore[no-untyped-def]
        if mode == "today":
            yield None
            return
        fill = True if mode == "fill" else None  # None: the device's default
        with batching.Batcher(separator, batch, stop, run=meter, fill=fill) as batcher:
            yield batcher

    def timed_segment(separator: Separator, audio: np.ndarray) -> np.ndarray:
        started = time.perf_counter()
        stems = plain_segment(separator, audio)
        meter.busy += time.perf_counter() - started
        meter.sizes.append(1)
        return stems

    plain_segment = segments.separate_segment
    engine_batch.batching, segments.separate_segment = forced, timed_segment  # type: ignore[assignment]
    try:
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        plan = plan_segments(sep, segment, min(8.0, segment / 4))
        options = OutputOptions(out_dir=out, model="umxhq", jobs=jobs, force=True)
        started, cpu = time.perf_counter(), time.process_time()
        result = separate_files(sep, files, options, plan=plan)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        engine_batch.batching, segments.separate_segment = batching.batching, plain_segment
    assert result.failed == 0 and len(result.reports) == len(files), result
    seconds = sum(r.seconds for r in result.reports.values())
    shutil.rmtree(out, ignore_errors=True)
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0
    return {"rtf": seconds / elapsed, "busy": meter.busy / elapsed, "peak_gib": peak,
            "cpu": cpu / seconds, "sizes": meter.sizes}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None, help="default: CUDA, then MPS, then CPU")
    parser.add_argument("--seconds", type=float, default=None, help="default: 600 (CPU: 90)")
    parser.add_argument("--files", type=int, default=1, help="files of --seconds each")
    parser.add_argument("--jobs", type=int, default=1, help="-j: files at a time")
    parser.add_argument("--segment", type=float, default=60.0, help="segment length (s)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="where stems go (default: tmp)")
    args = parser.parse_args()
    device = pick_device(args.device)
    seconds = args.seconds or (600.0 if device.type == "cuda" else 90.0)
    sep = umxhq(device)
    auto = batching.auto_batch_size(
        sep, plan_segments(sep, args.segment, min(8.0, args.segment / 4))
    )
    threads = torch.get_num_threads()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(f"device {device} ({name}), torch {torch.__version__}, {threads} CPU threads; "
          f"{args.files} file(s) of {seconds:g} s, -j {args.jobs}, {args.segment:g} s segments; "
          f"automatic --batch-size here: {auto}",
          flush=True)  # fmt: skip
    rows: dict[str, list[dict[str, float | list[int]]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        files = [write_music(Path(tmp) / f"song{k}.wav", seconds) for k in range(args.files)]
        out = (args.out or Path(tmp)) / "unmix-bench-gpu-out"
        # warm-up (CUDA context, cuDNN plans, page cache) and the pipeline's own ceiling
        run_once(sep, files, out, max(args.batch), args.jobs, args.segment)
        runs = [("today: no batcher", 1, "today")]
        runs += [(f"batch {b}", b, "batcher") for b in args.batch]
        if device.type == "cuda":  # the target networks one after another, as before
            runs += [(f"batch {max(args.batch)}, no streams", max(args.batch), "serial")]
            runs += [(f"batch {max(args.batch)}, fill", max(args.batch), "fill")]
        runs += [("pipeline (no network)", max(args.batch), "pipeline")]
        for r in range(args.repeat):
            for label, batch, mode in runs:
                umx.CUDA_STREAMS = mode != "serial"
                res = run_once(sep, files, out, batch, args.jobs, args.segment, mode)
                rows.setdefault(label, []).append(res)
                print(f"repeat {r} {label:<22}: {res['rtf']:7.1f}x real time, networks "
                      f"busy {100 * float(res['busy']):3.0f} %, CPU {float(res['cpu']):.3f} s "
                      "per s of audio", flush=True)  # fmt: skip
    print(f"\n| {'run':<22} | x real time | networks busy | CPU s / audio s | peak GiB | batches |")
    print(f"|{'-' * 24}|------------:|--------------:|----------------:|---------:|---------|")
    summary = {}
    for label, results in rows.items():
        rtf, busy, cpu = (
            statistics.median(float(x[k]) for x in results) for k in ("rtf", "busy", "cpu")
        )
        peak = max(float(x["peak_gib"]) for x in results)
        sizes = results[-1]["sizes"]
        summary[label] = {"rtf": round(rtf, 2), "busy": round(busy, 3), "cpu": round(cpu, 4),
                          "peak_gib": round(peak, 2)}  # fmt: skip
        print(f"| {label:<22} | {rtf:11.1f} | {100 * busy:12.0f} % | {cpu:15.3f} | {peak:8.2f} "
              f"| {sizes} |")  # fmt: skip
    print(json.dumps({"device": str(device), "name": name, "torch": torch.__version__,
                      "threads": threads, "seconds": seconds, "files": args.files,
                      "jobs": args.jobs, "segment": args.segment, "auto_batch_size": auto,
                      "median": summary}))  # fmt: skip


if __name__ == "__main__":
    main()
