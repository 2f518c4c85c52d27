"""Catalog benchmark: ``unmix separate --engine ray`` against the plain CLI on the same files.

Every case is one ``unmix separate`` process on the same ``--files`` MUSDB18 preview mixtures
(6.8 s each) with the shipped ``umx-preview`` model:

* ``plain``: the plain CLI, one thread (``--threads 1``);
* ``ray1``: ``--engine ray --workers 1 --threads-per-worker 1`` (a local cluster started by
  the command itself);
* ``ray2``: the same with ``--workers 2``.

Two figures per run:

* **wall**: the whole process, start-up included (Python, Ray, model loading);
* **steady**: audio seconds per wall second once files flow, with every fixed cost left
  out. Ray: from the ledger, the audio of every file after the first divided by the time
  between the first and the last file's ``finished`` (so everything Ray does between files
  counts). Plain: the same files' audio divided by the sum of their own times (from the
  CLI's per-file result lines; the plain CLI does nothing between files).

Cases alternate, ``--repeats`` times; medians are reported. Ray workers run at nice 0 like
the plain CLI (``RAY_worker_niceness=0``; Ray's default of 15 would handicap them on a
machine shared with other jobs).

    python benchmarks/bench_catalog.py --files 16 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import re
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
#: the plain CLI's result line: "(6.8 s at 44100 Hz, 2 ch, 15.5x real time)"
RESULT = re.compile(r"\(([\d.]+) s at \d+ Hz, \d ch, ([\d.]+)x real time")


def steady_plain(stdout: str) -> float:
    """Audio seconds per second of the files after the first, from the result lines."""
    files = [(float(s), float(s) / float(x)) for s, x in RESULT.findall(stdout)][1:]
    return sum(a for a, _ in files) / sum(t for _, t in files)


def steady_ray(ledger: Path) -> float:
    """Audio seconds per second between the first and the last finished file."""
    lines = [json.loads(line) for line in ledger.read_text().splitlines()]
    files = sorted((r for r in lines if r["kind"] == "file"), key=lambda r: r["finished"])
    return sum(r["seconds"] for r in files[1:]) / (files[-1]["finished"] - files[0]["finished"])


def run_case(name: str, clips: list[Path], work: Path) -> tuple[float, float]:
    """``(wall seconds, steady real-time factor)`` of one ``unmix separate`` process."""
    inputs, out = work / f"in-{name}", work / f"out-{name}"
    for folder in (inputs, out):
        shutil.rmtree(folder, ignore_errors=True)
    inputs.mkdir()
    for clip in clips:  # symlinks: the same bytes, a fresh folder per case
        (inputs / clip.name).symlink_to(clip)
    cmd = [sys.executable, "-m", "unmix", "separate", str(inputs), "--model", "umx-preview",
           "--out-dir", str(out), *CASES[name]]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_worker_niceness": "0"}
    started = time.perf_counter()
    done = subprocess.run(cmd, check=True, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    steady = steady_plain(done.stdout) if name == "plain" else steady_ray(out / "unmix-run.jsonl")
    return wall, steady


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    args = parser.parse_args()
    clips = sorted(CLIPS.glob("*.stem.mp4"))[: args.files]
    if len(clips) < args.files:
        sys.exit(f"need {args.files} clips in {CLIPS}")
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in args.cases}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for name in args.cases:
                load = os.getloadavg()[0]
                wall, steady = run_case(name, clips, Path(tmp))
                runs[name].append((wall, steady))
                print(
                    f"{name}: wall {wall:.1f} s, steady {steady:.2f}x (load {load:.1f})", flush=True
                )
    result = {
        name: {
            "wall_s": statistics.median(w for w, _ in values),
            "steady_rtf": statistics.median(s for _, s in values),
            "runs": values,
        }
        for name, values in runs.items()
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
