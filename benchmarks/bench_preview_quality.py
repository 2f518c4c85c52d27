"""SDR of small models on the MUSDB18-preview validation split, against mixture/4.

Scores each model (and Wiener setting) the way ``unmix evaluate --metrics sdr --split valid``
does (unmix's BSSEval v4 SDR, 1-s windows, median over frames then over the 14 clips) and
prints, per target, the SDR and its gain over the mixture/4 baseline (every target estimated
as a quarter of the mixture), scored in the same run with the same code.

    OMP_NUM_THREADS=1 python benchmarks/bench_preview_quality.py umx-preview \\
        'umx-preview niter=0' 'umx-preview softmask' path/to/model-folder

A spec is ``MODEL [niter=N] [softmask] [win=N|win=0] [shifts=N]`` (``win=0``: one Wiener
window; ``MODEL`` may be an ensemble ``a+b``, see ``unmix separate --model``).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from unmix.evaluate.estimates import EstimateSource, model_estimates
from unmix.evaluate.run import evaluate_tracks
from unmix.evaluate.scores import aggregate
from unmix.evaluate.scoring import EvalSettings
from unmix.filtering import WienerSettings
from unmix.hub.loading import load_separator
from unmix.tracks import Track, find_tracks

ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "musdb18-preview"
TARGETS = ("vocals", "drums", "bass", "other")


def quarter_mixture(
    track: Track, sources: Mapping[str, np.ndarray], rate: int
) -> dict[str, np.ndarray]:
    """The mixture/4 baseline: every target estimated as a quarter of the mixture."""
    mixture = np.asarray(sources["mixture"], dtype=np.float32)
    return {t: mixture / 4 for t in TARGETS}


def parse_spec(spec: str) -> tuple[str, WienerSettings, int]:
    """``MODEL [niter=N] [softmask] [win=N] [shifts=N]`` → (model, Wiener settings, shifts)."""
    model, *opts = spec.split()
    kwargs: dict[str, object] = {}
    shifts = 1
    for opt in opts:
        if opt.startswith("shifts="):
            shifts = int(opt[7:])
        elif opt == "softmask":
            kwargs["softmask"] = True
        elif opt.startswith("niter="):
            kwargs["niter"] = int(opt[6:])
        elif opt.startswith("win="):
            win = int(opt[4:])
            kwargs["wiener_win_len"] = win or None
        else:
            raise SystemExit(f"unknown option {opt!r} in {spec!r}")
    return model, WienerSettings(**kwargs), shifts  # type: ignore[arg-type]


def score(tracks: list[Track], estimates: EstimateSource) -> dict[str, float]:
    """Median-of-frames-then-clips SDR per target."""
    done, failed = evaluate_tracks(
        tracks, estimates, None, EvalSettings(mode="sdr"), report=lambda _: None
    )
    if failed:
        raise SystemExit("\n".join(failed))
    summary = aggregate(done, metrics=("SDR",))
    return {t: summary.table[t]["SDR"] for t in TARGETS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="+", help="MODEL [niter=N] [softmask] [win=N] [shifts=N]")
    parser.add_argument("--root", default=str(ROOT))
    args = parser.parse_args()
    torch.set_num_threads(1)
    tracks = find_tracks(args.root, "train", "valid")
    base = score(tracks, quarter_mixture)
    print(
        f"# {len(tracks)} validation clips of {args.root}; torch {torch.__version__}, "
        f"{platform.processor() or platform.machine()}, 1 thread (shared machine)"
    )
    head = "| model | " + " | ".join(f"{t} SDR (gain)" for t in TARGETS) + " | min gain | s |"
    print(head)
    print("|---|" + "---:|" * (len(TARGETS) + 2))
    print("| mixture/4 | " + " | ".join(f"{base[t]:.2f}" for t in TARGETS) + " | 0 | |")
    sys.stdout.flush()
    for spec in args.specs:
        model, wiener, shifts = parse_spec(spec)
        start = time.perf_counter()
        separator = load_separator(
            model, wiener=wiener, device="cpu", progress=False, shifts=shifts
        )
        sdr = score(tracks, model_estimates(separator))
        seconds = time.perf_counter() - start
        gains = {t: sdr[t] - base[t] for t in TARGETS}
        cells = " | ".join(f"{sdr[t]:.2f} ({gains[t]:+.2f})" for t in TARGETS)
        print(f"| {spec} | {cells} | {min(gains.values()):+.2f} | {seconds:.0f} |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
