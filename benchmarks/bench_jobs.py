"""``unmix separate -j N``: files per second with N files at a time, one model shared.

Runs :func:`unmix.engine.separate_files` on the same few files with ``jobs=1`` and
``jobs=2`` alternately (interleaved, so a busy neighbour slows both alike), each with the
same total CPU threads, and reports the median throughput (seconds of audio per second)::

    python benchmarks/bench_jobs.py --files 4 --seconds 10 --repeat 3 --model umx-preview

Inputs: mixtures of the MUSDB18 preview clips in ../shared/data (cut to --seconds), or
the bundled example clip when those are absent.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from unmix import audio as audio_io
from unmix.engine import OutputOptions, separate_files
from unmix.hub.loading import load_separator

ROOT = Path(__file__).resolve().parents[1]
PREVIEW = ROOT.parent / "shared" / "data" / "musdb18-preview" / "train"


def inputs(folder: Path, count: int, seconds: float) -> list[Path]:
    sources = sorted(PREVIEW.glob("*.stem.mp4"))[:count] or [
        ROOT / "examples" / "nightowl-preview.m4a"
    ]
    paths = []
    for k in range(count):
        audio, rate = audio_io.read(sources[k % len(sources)], duration=seconds)
        paths.append(folder / f"in{k}.wav")
        audio_io.write(paths[-1], audio, rate)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--model", default="umx-preview")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    sep = load_separator(args.model, device="cpu")
    threads = torch.get_num_threads()
    speeds: dict[int, list[float]] = {j: [] for j in args.jobs}
    with tempfile.TemporaryDirectory() as tmp:
        files = inputs(Path(tmp), args.files, args.seconds)
        audio_seconds = sum(audio_io.info(f).duration or 0.0 for f in files)
        for r in range(args.repeat):
            for jobs in args.jobs:
                torch.set_num_threads(threads)
                out = Path(tmp) / f"out-{jobs}-{r}"
                options = OutputOptions(out_dir=out, model=args.model, jobs=jobs)
                start = time.perf_counter()
                result = separate_files(sep, files, options)
                elapsed = time.perf_counter() - start
                assert len(result.reports) == len(files), result
                speeds[jobs].append(audio_seconds / elapsed)
                print(f"repeat {r}: -j {jobs}: {audio_seconds / elapsed:.2f} s/s", flush=True)
    summary = {
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": threads,
        "files": args.files,
        "seconds_per_file": args.seconds,
        "model": args.model,
        "median_audio_seconds_per_second": {j: statistics.median(v) for j, v in speeds.items()},
        "all": speeds,
    }
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
