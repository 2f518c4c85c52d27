"""Catalog benchmark: ``unmix separate --engine ray`` against the plain CLI on the same files.

Every case is one ``unmix separate`` process, timed wall clock from start to exit, on the
MUSDB18 preview mixtures (6.8 s each) with the shipped ``umx-preview`` model:

* ``plain``: the plain CLI, one thread (``--threads 1``);
* ``ray1``: ``--engine ray --workers 1 --threads-per-worker 1`` (a local cluster started by
  the command itself);
* ``ray2``: the same with ``--workers 2``.

Each case runs on ``N`` and on ``2N`` files; the difference of the two wall times is the cost
of ``N`` more files with every fixed cost (Python and Ray start-up, model loading) taken
out, so ``N * 6.8 s / (T(2N) - T(N))`` is the steady throughput (× real time) of a long
catalog run (the median of the per-repeat differences). Cases alternate, ``--repeats``
times; medians are reported.

    python benchmarks/bench_catalog.py --files 12 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLIPS = Path(os.environ.get("UNMIX_SHARED", REPO.parent / "shared")) / "data/musdb18-preview/train"

CASES = {
    "plain": ["--threads", "1"],
    "ray1": ["--engine", "ray", "--workers", "1", "--threads-per-worker", "1"],
    "ray2": ["--engine", "ray", "--workers", "2", "--threads-per-worker", "1"],
}


def run_case(name: str, clips: list[Path], work: Path) -> float:
    """Wall seconds of one ``unmix separate`` process on ``clips``."""
    inputs = work / f"in-{name}-{len(clips)}"
    out = work / f"out-{name}-{len(clips)}"
    shutil.rmtree(inputs, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    inputs.mkdir()
    for clip in clips:  # symlinks: the same bytes, a fresh folder per case
        (inputs / clip.name).symlink_to(clip)
    cmd = [sys.executable, "-m", "unmix", "separate", str(inputs), "--model", "umx-preview",
           "--out-dir", str(out), "-q", *CASES[name]]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=12, help="N (the cases also run 2N)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    args = parser.parse_args()
    clips = sorted(CLIPS.glob("*.stem.mp4"))[: 2 * args.files]
    if len(clips) < 2 * args.files:
        sys.exit(f"need {2 * args.files} clips in {CLIPS}")
    audio = 6.8 * args.files
    times: dict[tuple[str, int], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for name in args.cases:
                for n in (args.files, 2 * args.files):
                    load = os.getloadavg()[0]
                    seconds = run_case(name, clips[:n], Path(tmp))
                    times.setdefault((name, n), []).append(seconds)
                    print(f"{name} {n} files: {seconds:.1f} s (load {load:.1f})", flush=True)
    result = {}
    for name in args.cases:
        smalls, larges = times[name, args.files], times[name, 2 * args.files]
        marginal = statistics.median(b - a for a, b in zip(smalls, larges, strict=True))
        result[name] = {
            "wall_N": statistics.median(smalls),
            "wall_2N": statistics.median(larges),
            "marginal_s": marginal,
            "steady_rtf": audio / marginal if marginal > 0 else float("inf"),
            "fixed_s": statistics.median(smalls) - marginal,
        }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
