"""BSSEval v4: unmix.metrics against museval 0.4.1 — speed, memory and agreement.

Speed (4 stereo sources, 1-s windows; museval and unmix alternate, each run in a fresh
process, so that the peak memory of one is not charged to the other)::

    python benchmarks/bench_metrics.py speed --seconds 30 180 --repeat 3

Short inputs (one 7-s preview clip, three joined: 21 s), one thread each (BLAS and
unmix's own threads), and where each implementation spends its time on them::

    python benchmarks/bench_metrics.py short
    python benchmarks/bench_metrics.py speed --seconds 7 21 --threads 1 --repeat 5
    python benchmarks/bench_metrics.py stages --seconds 7 21

Whole processes (imports included), e.g. with /usr/bin/time -v, on saved signals::

    python benchmarks/bench_metrics.py signals --seconds 21 --out /tmp/signals21
    python benchmarks/bench_metrics.py worker unmix /tmp/signals21 /tmp/unmix.npy

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


def thread_env(threads: int | None) -> dict[str, str]:
    """The environment of a child limited to ``threads`` threads (BLAS and unmix's own)."""
    env = dict(os.environ)
    if threads is not None:
        for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[key] = str(threads)
        env["UNMIX_METRICS_THREADS"] = str(threads)
    return env


def save_signals(seconds: float, out: Path, first_clip: int = 0) -> str:
    """Write ``references.npy`` and ``estimates.npy`` of :func:`make_signals` into ``out``."""
    refs, ests, what = make_signals(seconds, first_clip=first_clip)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "references.npy", refs)
    np.save(out / "estimates.npy", ests)
    return f"{what}; {solver_path(refs, ests)}"


def run_worker(impl: str, data: Path, out: Path) -> None:
    """Score the saved signals with one implementation; print one JSON line."""
    refs, ests = np.load(data / "references.npy"), np.load(data / "estimates.npy")
    if impl == "museval":
        museval = import_museval()
    else:
        from unmix.metrics import bss_eval_v4
    base_mb = _resident_mb("VmRSS")  # inputs and imports
    _reset_peak()
    start, cpu = time.perf_counter(), time.process_time()
    if impl == "museval":
        scores = museval.evaluate(refs, ests, win=RATE, hop=RATE)
    else:
        scores = bss_eval_v4(refs, ests, RATE, RATE)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    peak_mb = _resident_mb("VmHWM")
    np.save(out, np.stack([np.asarray(s) for s in scores[:4]]))
    result = {"impl": impl, "seconds": seconds, "cpu": cpu, "peak_mb": peak_mb, "base_mb": base_mb}
    print(json.dumps(result))


def _child(
    impl: str, data: Path, out: Path, threads: int | None = None, command: str = "worker"
) -> dict[str, float]:
    cmd = [sys.executable, __file__, command, impl, str(data), str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, env=thread_env(threads))
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


def _header(threads: int | None) -> None:
    import scipy

    import unmix

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"unmix {unmix.__version__}; threads: {threads or 'library defaults'}; "
        f"load average {load:.1f} before the runs"
    )


def speed(
    seconds_list: list[float], repeat: int, first_clip: int = 0, threads: int | None = None
) -> None:
    _header(threads)
    print(
        "| audio | signals | museval s | unmix s | speed-up | speed-up in CPU time "
        "| museval peak MB (before the call) | unmix peak MB (before) "
        "| max abs diff SDR / ISR / SIR / SAR (dB) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in seconds_list:
            data = Path(tmp) / "signals"
            what = save_signals(seconds, data, first_clip)
            runs: dict[str, list[dict[str, float]]] = {"museval": [], "unmix": []}
            for _ in range(repeat):  # alternate, so that drifts in machine load hit both
                for impl in ("unmix", "museval"):
                    runs[impl].append(_child(impl, data, Path(tmp) / f"{impl}.npy", threads))
            a, b = np.load(Path(tmp) / "unmix.npy"), np.load(Path(tmp) / "museval.npy")
            diffs = " / ".join(f"{np.nanmax(np.abs(a[k] - b[k])):.1e}" for k in range(4))
            med = {k: float(np.median([r["seconds"] for r in v])) for k, v in runs.items()}
            peak = {k: float(np.median([r["peak_mb"] for r in v])) for k, v in runs.items()}
            base = {k: float(np.median([r["base_mb"] for r in v])) for k, v in runs.items()}
            pairs = list(zip(runs["museval"], runs["unmix"], strict=True))
            ratios = [m["seconds"] / u["seconds"] for m, u in pairs]
            cpu = [m["cpu"] / u["cpu"] for m, u in pairs]
            print(
                f"| {seconds:g} s | {what} | {med['museval']:.2f} | {med['unmix']:.2f} | "
                f"{np.median(ratios):.1f}x (runs {min(ratios):.1f}-{max(ratios):.1f}) | "
                f"{np.median(cpu):.1f}x ({min(cpu):.1f}-{max(cpu):.1f}) | "
                f"{peak['museval']:.0f} ({base['museval']:.0f}) | "
                f"{peak['unmix']:.0f} ({base['unmix']:.0f}) | {diffs} |",
                flush=True,
            )


#: unmix's stages, timed by wrapping these functions: (module, function, label)
UNMIX_STAGES = (
    ("filters", "lagged_xcorr", "correlations (blocks of FFTs)"),
    ("filters", "_schur_solve", "all-reference filters (block-Toeplitz Schur, checked)"),
    ("filters", "cholesky_solve_in_place", "own-reference filters (dense Cholesky)"),
    ("bsseval", "filter_responses", "frequency responses of the filters"),
    ("bsseval", "framewise_scores", "window scoring (FFTs, projections, energies)"),
)
#: museval's stages: (substring of the profiled function's name, label)
MUSEVAL_STAGES = (
    ("solve", "LU solves (numpy.linalg.solve)"),
    ("pocketfft", "FFTs (correlations, filtering)"),
)


def run_stages(impl: str, data: Path) -> None:
    """CPU seconds of one call (the first in this process) by stage; one JSON line."""
    import cProfile
    import pstats

    refs, ests = np.load(data / "references.npy"), np.load(data / "estimates.npy")
    stages: dict[str, float] = {}
    if impl == "museval":
        museval = import_museval()
        profile = cProfile.Profile(time.process_time)
        start = time.process_time()
        profile.runcall(museval.evaluate, refs, ests, win=RATE, hop=RATE)
        total = time.process_time() - start
        table = pstats.Stats(profile).stats  # type: ignore[attr-defined]
        for key, label in MUSEVAL_STAGES:
            stages[label] = sum(
                cum if key == "solve" else own
                for (file, _, name), (_, _, own, cum, _) in table.items()
                if key in name and (key != "solve" or "linalg" in file)
            )
    else:
        from unmix.metrics import bss_eval_v4, bsseval, filters

        modules = {"filters": filters, "bsseval": bsseval}
        for module, name, label in UNMIX_STAGES:
            function = getattr(modules[module], name)

            def timed(*args: object, _f=function, _label=label, **kwargs: object) -> object:
                begin = time.process_time()  # one thread works at a time (threads: 1)
                try:
                    return _f(*args, **kwargs)
                finally:
                    stages[_label] = stages.get(_label, 0.0) + time.process_time() - begin

            setattr(modules[module], name, timed)
        start = time.process_time()
        bss_eval_v4(refs, ests, RATE, RATE)
        total = time.process_time() - start
        stages[UNMIX_STAGES[-1][2]] -= stages[UNMIX_STAGES[-2][2]]  # responses: own line
    stages["everything else (checks, set-up, aggregation)"] = total - sum(stages.values())
    stages["total"] = total
    print(json.dumps(stages))


def stage_table(seconds_list: list[float], repeat: int) -> None:
    """Where the time goes, one thread each: medians of ``repeat`` fresh processes."""
    _header(1)
    with tempfile.TemporaryDirectory() as tmp:
        for impl, unit, scale in (("unmix", "ms", 1000.0), ("museval", "s", 1.0)):
            columns = []
            for seconds in seconds_list:
                data = Path(tmp) / f"signals{seconds:g}"
                if not data.is_dir():
                    save_signals(seconds, data)
                runs = [
                    _child(impl, data, Path(tmp) / "unused", 1, "stages-worker")
                    for _ in range(repeat)
                ]
                columns.append({k: float(np.median([r[k] for r in runs])) for k in runs[0]})
            heads = " | ".join(f"{s:g} s" for s in seconds_list)
            print(f"| {impl}: CPU {unit} per call | {heads} |")
            print("|---|" + "---:|" * len(seconds_list))
            for key in columns[0]:
                cells = " | ".join(
                    f"{scale * c[key]:.{0 if unit == 'ms' else 2}f}" for c in columns
                )
                print(f"| {key} | {cells} |")


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
    s.add_argument("--threads", type=int, help="BLAS and unmix threads (default: theirs)")
    sh = sub.add_parser("short", help="speed on 7 s and 21 s, one thread each, 5 pairs")
    sh.add_argument("--repeat", type=int, default=5)
    st = sub.add_parser("stages", help="CPU time by stage, unmix and museval, one thread")
    st.add_argument("--seconds", type=float, nargs="+", default=[7.0, 21.0])
    st.add_argument("--repeat", type=int, default=3)
    sg = sub.add_parser("signals", help="save the signals of --seconds into --out")
    sg.add_argument("--seconds", type=float, required=True)
    sg.add_argument("--out", type=Path, required=True)
    c = sub.add_parser("conditioning", help="agreement on band-limited stems")
    c.add_argument("--clips", type=int, default=4)
    w = sub.add_parser("worker", help=argparse.SUPPRESS)
    w.add_argument("impl", choices=["unmix", "museval"])
    w.add_argument("data", type=Path)
    w.add_argument("out", type=Path)
    ws = sub.add_parser("stages-worker", help=argparse.SUPPRESS)
    ws.add_argument("impl", choices=["unmix", "museval"])
    ws.add_argument("data", type=Path)
    ws.add_argument("out", type=Path)
    args = parser.parse_args()
    if args.command == "speed":
        speed(args.seconds, args.repeat, args.first_clip, args.threads)
    elif args.command == "short":
        speed([7.0, 21.0], args.repeat, 0, 1)
    elif args.command == "stages":
        stage_table(args.seconds, args.repeat)
    elif args.command == "signals":
        print(save_signals(args.seconds, args.out))
    elif args.command == "stages-worker":
        run_stages(args.impl, args.data)
    elif args.command == "conditioning":
        conditioning(args.clips)
    else:
        run_worker(args.impl, args.data, args.out)


if __name__ == "__main__":
    main()
