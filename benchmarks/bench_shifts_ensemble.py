"""SDR gain and time cost of test-time shifts and of an ensemble, on the validation split.

For each of the 14 MUSDB18-preview validation clips, every variant separates the mixture
(one thread; the order of the variants rotates from clip to clip, so a busy spell on a
shared machine does not fall on one variant only); the stems are scored as
``unmix evaluate --metrics sdr --split valid`` does (BSSEval v4 SDR, 1-s windows, median
over frames, then over clips). Then the ensemble's weights per target are chosen from the
two members' stems (weights of umx-preview 0, 0.25, ..., 1): once on all 14 clips
(optimistic: chosen and scored on the same clips) and once leaving each clip out of its own
choice (an honest estimate of what tuned weights give on unseen clips).

    OMP_NUM_THREADS=1 nice python benchmarks/bench_shifts_ensemble.py

Prints a markdown table: per target SDR and gain over umx-preview, separation seconds (CPU
time of the process, and wall clock) and cost relative to umx-preview. About 3 minutes on an
idle core.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from unmix.api import separate_array
from unmix.evaluate.scores import TrackScores, aggregate
from unmix.evaluate.scoring import score_track
from unmix.hub.loading import load_separator
from unmix.separator import Separator
from unmix.tracks import find_tracks

ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "musdb18-preview"
TARGETS = ("vocals", "drums", "bass", "other")
BASE, OTHER = "umx-preview", "umx-rt-preview"
PAIR = f"{BASE}+{OTHER}"
GRID = (0.0, 0.25, 0.5, 0.75, 1.0)  # weight of umx-preview in the weighted ensemble


def variants() -> dict[str, Separator]:
    """The separators compared, by row label."""
    specs = {BASE: (BASE, 1), f"{BASE} --shifts 2": (BASE, 2), f"{BASE} --shifts 4": (BASE, 4),
             OTHER: (OTHER, 1), PAIR: (PAIR, 1)}  # fmt: skip
    return {
        label: load_separator(model, device="cpu", progress=False, shifts=shifts)
        for label, (model, shifts) in specs.items()
    }


def clip_sdr(scores: TrackScores) -> dict[str, float]:
    """Median over frames per target (what the median over clips is taken of)."""
    return {t: v["SDR"] for t, v in scores.frame_aggregate().items()}


def weighted(a: dict[str, np.ndarray], b: dict[str, np.ndarray], w: float) -> dict[str, np.ndarray]:
    return {t: w * a[t] + (1 - w) * b[t] for t in TARGETS}


def choose_weights(
    grid_scores: dict[float, list[dict[str, float]]], keep: list[int]
) -> dict[str, float]:
    """Per target, the grid weight with the best median over the clips ``keep``."""
    return {
        t: max(GRID, key=lambda w: float(np.median([grid_scores[w][i][t] for i in keep])))
        for t in TARGETS
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(ROOT))
    args = parser.parse_args()
    torch.set_num_threads(1)
    tracks = find_tracks(args.root, "train", "valid")
    seps = variants()
    names = list(seps)
    seconds = dict.fromkeys(names, 0.0)  # wall clock
    cpu = dict.fromkeys(names, 0.0)  # process CPU time: what a busy shared machine inflates least
    scores: dict[str, list[TrackScores]] = {n: [] for n in names}
    grid: dict[float, list[dict[str, float]]] = {w: [] for w in GRID}
    audio_seconds = 0.0
    for k, track in enumerate(tracks):
        sources, rate = track.load()
        audio_seconds += sources["mixture"].shape[-1] / rate
        stems: dict[str, dict[str, np.ndarray]] = {}
        for name in names[k % len(names) :] + names[: k % len(names)]:
            start, start_cpu = time.perf_counter(), time.process_time()
            stems[name] = separate_array(seps[name], sources["mixture"], rate)
            seconds[name] += time.perf_counter() - start
            cpu[name] += time.process_time() - start_cpu
            scores[name].append(score_track(sources, stems[name], rate, track.name, mode="sdr"))
        for w in GRID:
            mix = weighted(stems[BASE], stems[OTHER], w)
            grid[w].append(clip_sdr(score_track(sources, mix, rate, track.name, mode="sdr")))
        print(f"{k + 1}/{len(tracks)} {track.name}", file=sys.stderr)

    tables = {n: aggregate(scores[n], metrics=("SDR",)).table for n in names}
    sdr = {n: {t: tables[n][t]["SDR"] for t in TARGETS} for n in names}
    everywhere = choose_weights(grid, list(range(len(tracks))))
    sdr["weighted, tuned on these clips"] = {
        t: float(np.median([grid[everywhere[t]][i][t] for i in range(len(tracks))]))
        for t in TARGETS
    }
    loo = []
    for i in range(len(tracks)):
        chosen = choose_weights(grid, [j for j in range(len(tracks)) if j != i])
        loo.append({t: grid[chosen[t]][i][t] for t in TARGETS})
    sdr["weighted, leave-one-out"] = {t: float(np.median([c[t] for c in loo])) for t in TARGETS}
    print(
        f"# {len(tracks)} validation clips ({audio_seconds:.0f} s) of {args.root}; torch "
        f"{torch.__version__}, {platform.processor() or platform.machine()}, 1 thread; "
        f"weights of {BASE} per target tuned on all clips: "
        + ", ".join(f"{t} {everywhere[t]:g}" for t in TARGETS)
    )
    columns = " | ".join(f"{t} SDR (gain)" for t in TARGETS)
    print(f"| variant | {columns} | CPU s | cost (CPU) | wall s | cost (wall) |")
    print("|---|" + "---:|" * (len(TARGETS) + 4))
    for name, row in sdr.items():
        cells = " | ".join(f"{row[t]:.2f} ({row[t] - sdr[BASE][t]:+.2f})" for t in TARGETS)
        used, took = cpu.get(name, cpu[PAIR]), seconds.get(name, seconds[PAIR])
        print(
            f"| {name} | {cells} | {used:.1f} | {used / cpu[BASE]:.2f}x | {took:.1f} | "
            f"{took / seconds[BASE]:.2f}x |"
        )


if __name__ == "__main__":
    main()
