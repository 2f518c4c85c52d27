"""BSSEval v4: unmix.metrics against museval 0.4.1 — speed, memory and agreement.

Speed (4 stereo sources, 1-s windows; museval and unmix alternate, each run in a fresh
process, so that the peak memory of one is not charged to the other)::

    python benchmarks/bench_metrics.py speed --seconds 30 180 --repeat 3

Conditioning (how close unmix gets to museval on the band-limited MUSDB18 stems, next to
how much museval itself moves when the references change by 1e-9)::

    python benchmarks/bench_metrics.py conditioning --clips 4

Signals: the stems of the MUSDB18 preview clips in ../shared/data (clips joined end to end
up to the wanted length); white noise where they are absent. Estimates are the references
plus a leak of another stem and noise 15 dB down. museval is a test/benchmark dependency
only (pip install museval==0.4.1; it needs ffmpeg on the PATH at import time).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np

RATE = 44100
PREVIEW = Path(__file__).resolve().parents[2] / "shared" / "data" / "musdb18-preview" / "train"


def import_museval() -> types.ModuleType:
    """museval, with musdb stubbed if stempeg cannot find ffmpeg (the metrics do not need it)."""
    try:
        importlib.import_module("musdb")
    except (RuntimeError, ImportError):  # stempeg raises without ffmpeg; musdb may be absent
        sys.modules["musdb"] = types.ModuleType("musdb")
    return importlib.import_module("museval")


def _clips() -> list[Path]:
    return sorted(PREVIEW.glob("*.stem.mp4")) if PREVIEW.is_dir() else []


def make_signals(
    seconds: float, seed: int = 0, first_clip: int = 0
) -> tuple[np.ndarray, np.ndarray, str]:
    """``(references, estimates, description)``, each ``(4, seconds * 44100, 2)`` float32.

    The stems of the preview clips from ``first_clip`` on, joined end to end.
    """
    from unmix import audio

    length = int(seconds * RATE)
    rng = np.random.default_rng(seed)
    clips = _clips()
    if clips:
        parts, have = [], 0
        for clip in clips[first_clip:]:
            stems, _ = audio.read_stems(clip)
            parts.append(stems[1:])
            have += stems.shape[-1]
            if have >= length:
                break
        refs = np.concatenate(parts, axis=-1)[..., :length].transpose(0, 2, 1)
        what = f"MUSDB18 preview stems ({len(parts)} clips from #{first_clip} joined)"
    else:
        refs = 0.1 * rng.standard_normal((4, length, 2))
        what = "white noise (preview clips not found)"
    refs = np.ascontiguousarray(refs, dtype=np.float32)
    level = np.sqrt(np.mean(refs.astype(np.float64) ** 2, axis=(1, 2), keepdims=True))
    noise = (10 ** (-15 / 20)) * level * rng.standard_normal(refs.shape)
    ests = (refs + 0.1 * refs[[1, 2, 3, 0]] + noise).astype(np.float32)
    return refs, ests, what


def _resident_mb(key: str) -> float:
    """``VmRSS`` or ``VmHWM`` (peak) of this process in MB; ru_maxrss where /proc lacks it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return float(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak() -> None:
    """Start the peak-memory count afresh (Linux: ``5`` into ``clear_refs``); ru_maxrss
    would also count the parent's peak, which a forked child inherits."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def run_worker(impl: str, data: Path, out: Path) -> None:
    """Score the saved signals with one implementation; print one JSON line."""
    refs, ests = np.load(data / "references.npy"), np.load(data / "estimates.npy")
    if impl == "museval":
        museval = import_museval()
    else:
        from unmix.metrics import bss_eval_v4
    base_mb = _resident_mb("VmRSS")  # inputs and imports
    _reset_peak()
    start = time.perf_counter()
    if impl == "museval":
        scores = museval.evaluate(refs, ests, win=RATE, hop=RATE)
    else:
        scores = bss_eval_v4(refs, ests, RATE, RATE)
    seconds = time.perf_counter() - start
    peak_mb = _resident_mb("VmHWM")
    np.save(out, np.stack([np.asarray(s) for s in scores[:4]]))
    print(json.dumps({"impl": impl, "seconds": seconds, "peak_mb": peak_mb, "base_mb": base_mb}))


def _child(impl: str, data: Path, out: Path) -> dict[str, float]:
    cmd = [sys.executable, __file__, "worker", impl, str(data), str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def solver_path(refs: np.ndarray, ests: np.ndarray) -> str:
    """Which path unmix's solver takes on these signals (the Gram matrix's conditioning)."""
    from unmix.metrics import filters
    from unmix.metrics.correlation import lagged_xcorr

    rows = refs.shape[0] * refs.shape[2]
    corr = lagged_xcorr([refs, ests], [refs], 511)
    fast = filters._schur_solve(corr[:rows], filters.cross_matrix(corr[rows:], 512), 512, 0.0)
    return "Schur" if fast is not None else "indefinite Gram: LU"


def speed(seconds_list: list[float], repeat: int, first_clip: int = 0) -> None:
    import unmix

    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}, numpy {np.__version__}, unmix {unmix.__version__}"
    )
    print(
        "| audio | signals | museval s | unmix s | speed-up | museval peak MB (before the call) "
        "| unmix peak MB (before) "
        "| max abs diff SDR / ISR / SIR / SAR (dB) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in seconds_list:
            refs, ests, what = make_signals(seconds, first_clip=first_clip)
            what += f"; {solver_path(refs, ests)}"
            data = Path(tmp) / "signals"
            data.mkdir(exist_ok=True)
            np.save(data / "references.npy", refs)
            np.save(data / "estimates.npy", ests)
            del refs, ests
            runs: dict[str, list[dict[str, float]]] = {"museval": [], "unmix": []}
            for _ in range(repeat):  # alternate, so that drifts in machine load hit both
                for impl in ("unmix", "museval"):
                    runs[impl].append(_child(impl, data, Path(tmp) / f"{impl}.npy"))
            a, b = np.load(Path(tmp) / "unmix.npy"), np.load(Path(tmp) / "museval.npy")
            diffs = " / ".join(f"{np.nanmax(np.abs(a[k] - b[k])):.1e}" for k in range(4))
            med = {k: float(np.median([r["seconds"] for r in v])) for k, v in runs.items()}
            peak = {k: float(np.median([r["peak_mb"] for r in v])) for k, v in runs.items()}
            base = {k: float(np.median([r["base_mb"] for r in v])) for k, v in runs.items()}
            ratios = [
                m["seconds"] / u["seconds"]
                for m, u in zip(runs["museval"], runs["unmix"], strict=True)
            ]
            print(
                f"| {seconds:g} s | {what} | {med['museval']:.2f} | {med['unmix']:.2f} | "
                f"{np.median(ratios):.1f}x (runs {min(ratios):.1f}-{max(ratios):.1f}) | "
                f"{peak['museval']:.0f} ({base['museval']:.0f}) | "
                f"{peak['unmix']:.0f} ({base['unmix']:.0f}) | {diffs} |",
                flush=True,
            )


def conditioning(nb_clips: int) -> None:
    """unmix vs museval, and museval vs itself with references nudged by 1e-9."""
    from unmix import audio
    from unmix.metrics import bss_eval_v4

    museval = import_museval()
    rng = np.random.default_rng(0)
    names = ("SDR", "ISR", "SIR", "SAR")
    worst = {k: np.zeros(4) for k in ("unmix", "nudged", "unmix_reg")}
    medians = []
    for clip in _clips()[:nb_clips]:
        stems, _ = audio.read_stems(clip)
        refs = stems[1:].transpose(0, 2, 1).astype(np.float64)
        level = np.sqrt(np.mean(refs**2, axis=(1, 2), keepdims=True))
        for kind in ("noise only", "leak + noise"):
            noise = 10 ** (-17 / 20) * level * rng.standard_normal(refs.shape)
            ests = refs + noise + (0.1 * refs[[1, 2, 3, 0]] if kind != "noise only" else 0)
            ref_scores = np.array(museval.evaluate(refs, ests))
            nudged = np.array(museval.evaluate(refs + 1e-9 * rng.standard_normal(refs.shape), ests))
            ours = np.array(bss_eval_v4(refs, ests))
            reg = np.array(bss_eval_v4(refs, ests, regularization=10**-4.5))
            for key, arr in (("unmix", ours), ("nudged", nudged)):
                worst[key] = np.maximum(
                    worst[key], np.nanmax(np.abs(arr - ref_scores), axis=(1, 2))
                )
            medians.append(
                (
                    clip.name,
                    kind,
                    np.nanmedian(ref_scores, axis=(1, 2)),
                    np.nanmedian(reg, axis=(1, 2)),
                )
            )
    print(
        f"max |unmix - museval| over {nb_clips} clips x 2 estimate kinds (dB): "
        + ", ".join(f"{n} {v:.1e}" for n, v in zip(names, worst["unmix"], strict=True))
    )
    print(
        "max |museval(refs + 1e-9 noise) - museval(refs)| (dB): "
        + ", ".join(f"{n} {v:.1e}" for n, v in zip(names, worst["nudged"], strict=True))
    )
    print("| clip | estimate | museval median SDR/ISR/SIR/SAR | unmix regularization=10^-4.5 |")
    print("|---|---|---|---|")
    for name, kind, m, r in medians:
        print(
            f"| {name} | {kind} | {' / '.join(f'{v:.1f}' for v in m)} | "
            f"{' / '.join(f'{v:.1f}' for v in r)} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("speed", help="time museval and unmix, alternating")
    s.add_argument("--seconds", type=float, nargs="+", default=[30.0, 180.0])
    s.add_argument("--repeat", type=int, default=3)
    s.add_argument("--first-clip", type=int, default=0, help="join the clips from this one on")
    c = sub.add_parser("conditioning", help="agreement on band-limited stems")
    c.add_argument("--clips", type=int, default=4)
    w = sub.add_parser("worker", help=argparse.SUPPRESS)
    w.add_argument("impl", choices=["unmix", "museval"])
    w.add_argument("data", type=Path)
    w.add_argument("out", type=Path)
    args = parser.parse_args()
    if args.command == "speed":
        speed(args.seconds, args.repeat, args.first_clip)
    elif args.command == "conditioning":
        conditioning(args.clips)
    else:
        run_worker(args.impl, args.data, args.out)


if __name__ == "__main__":
    main()
