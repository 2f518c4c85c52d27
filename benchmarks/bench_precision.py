"""Precision benchmark: ``--precision bf16`` (and ``fp16`` on CUDA) against fp32.

For each model (random-weight ``umxhq`` size, the issue's reference, and the shipped
``umx-preview``) and thread count, 30 s of real music (the MUSDB18 preview mixtures back to
back) go file to files through :func:`unmix.api.separate_file` (decode, segments, four
float WAV stems: what ``unmix separate`` does), the precisions taking turns (fp32, bf16,
fp32, bf16, ...) so that a drifting machine hits both alike. It prints, as markdown, the
median wall time, the speed-up against fp32 measured pair by pair (median of the pairs),
the share of time inside the networks, and the SDR of each target's stem against the
fp32 stem (in-memory separation of the same music, and of the bundled example clip),
where the time of one separation goes, stage by stage (``precision_split.py``; thread CPU
seconds on one thread, wall seconds on several), and one line per thread count against the
issue's goal (bf16 at least 1.6x faster than fp32, stems at least 40 dB SDR against fp32).
It also prints how busy the machine was besides this process while it timed (from
``/proc/stat``, Linux): a two-thread figure taken while neighbours used the cores measures
them.

    python benchmarks/bench_precision.py --threads 2                    # the two-thread goal
    OMP_NUM_THREADS=1 python benchmarks/bench_precision.py --threads 1  # the one-thread goal
    python benchmarks/bench_precision.py --threads 1 2 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.helpers
sys.path.insert(0, str(Path(__file__).resolve().parent))  # sep_common

from tests.helpers import randomize

import sep_common as common
from precision_split import STAGES, split
from unmix import audio as audio_io
from unmix.api import separate_array, separate_file
from unmix.config import CONFIGS
from unmix.hub.loading import load_separator
from unmix.models.architectures import get_architecture
from unmix.precision import cpu_bf16_support, parse_precision
from unmix.separator import Separator

EXAMPLE = common.REPO / "examples" / "nightowl-preview.m4a"
#: the issue's goal: bf16 this much faster than fp32 (wall, pair by pair) ...
GOAL_SPEEDUP = 1.6
#: ... with every stem at least this close to the fp32 stem (SDR, dB)
GOAL_SDR = 40.0
#: cores' worth of other processes' CPU above which a timing is not trusted
BUSY = 0.1
#: one timed run: wall seconds, seconds inside the networks, process CPU seconds
Run = tuple[float, float, float]


def random_umxhq(precision: str, device: torch.device) -> Separator:
    """The issue's reference size: umxhq config (hidden 512), the test suite's random weights."""
    config = CONFIGS["umxhq"]
    model = get_architecture(config.arch).build(config)
    randomize(model, seed=0)
    sep = Separator(model.freeze(), config, precision=parse_precision(precision))
    return sep.freeze().to(device)


def loader(name: str) -> Callable[[str, torch.device], Separator]:
    if name == "umxhq-random":
        return random_umxhq
    return lambda precision, device: load_separator(name, device=device, precision=precision)


@contextmanager
def network_clock(sep: Separator) -> Iterator[list[float]]:
    """Seconds spent inside ``sep.model`` (forward hooks), appended to the yielded list."""
    spent = [0.0]
    started: list[float] = []
    pre = sep.model.register_forward_pre_hook(lambda *_: started.append(time.perf_counter()))
    post = sep.model.register_forward_hook(
        lambda *_: spent.__setitem__(0, spent[0] + time.perf_counter() - started.pop())
    )
    try:
        yield spent
    finally:
        pre.remove()
        post.remove()


def sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """10 log10(|ref|^2 / |ref - est|^2) over the whole stem (dB; inf when equal)."""
    noise = float(np.sum((reference.astype(np.float64) - estimate) ** 2))
    signal = float(np.sum(reference.astype(np.float64) ** 2))
    return float("inf") if noise == 0 else 10 * np.log10(signal / noise)


def stems_sdr(
    seps: dict[str, Separator], audio: np.ndarray, rate: int
) -> dict[str, dict[str, float]]:
    """Per precision (not fp32): SDR of each target's stem against the fp32 stem."""
    with torch.inference_mode():
        stems = {p: separate_array(sep, audio, rate) for p, sep in seps.items()}
    return {p: {t: sdr(stems["fp32"][t], s[t]) for t in s} for p, s in stems.items() if p != "fp32"}


def busy_cpu_seconds() -> float | None:
    """CPU seconds used so far by the whole machine (``/proc/stat``), ``None`` elsewhere."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        ticks = [int(v) for v in fields]
    except (OSError, ValueError):
        return None
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle, iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


@contextmanager
def neighbours() -> Iterator[list[float]]:
    """Cores' worth of CPU used by other processes while inside (yields a list that gets
    one number, or nothing where ``/proc/stat`` is missing)."""
    load: list[float] = []
    busy, own, start = busy_cpu_seconds(), time.process_time(), time.perf_counter()
    yield load
    after = busy_cpu_seconds()
    if busy is not None and after is not None:
        others = (after - busy) - (time.process_time() - own)
        load.append(max(0.0, others) / max(time.perf_counter() - start, 1e-9))


def time_files(
    seps: dict[str, Separator], wav: Path, out: Path, repeats: int
) -> dict[str, list[Run]]:
    """Per precision, ``repeats`` × (wall seconds, network seconds, process CPU seconds) of
    file-to-files runs, the precisions taking turns; one warm-up run each first."""
    runs: dict[str, list[Run]] = {p: [] for p in seps}
    for k in range(repeats + 1):
        for precision, sep in seps.items():
            with network_clock(sep) as spent:
                start, cpu = time.perf_counter(), time.process_time()
                separate_file(sep, wav, out / f"{precision}-{k}", fmt="wav")
                if next(sep.parameters()).device.type == "cuda":
                    torch.cuda.synchronize()
                wall, cpu = time.perf_counter() - start, time.process_time() - cpu
            if k:
                runs[precision].append((wall, spent[0], cpu))
    return runs


def summary(base: list[Run], runs: list[Run], seconds: float) -> tuple[float, ...]:
    """Medians: wall s, × real time, wall speed-up pair by pair, CPU s, CPU speed-up, share
    of the wall time inside the networks."""
    pairs = list(zip(base, runs, strict=True))
    wall = statistics.median(r[0] for r in runs)
    return (
        wall,
        seconds / wall,
        statistics.median(b[0] / r[0] for b, r in pairs),
        statistics.median(r[2] for r in runs),
        statistics.median(b[2] / r[2] for b, r in pairs),
        statistics.median(r[1] / r[0] for r in runs),
    )


def fmt_sdr(values: dict[str, float]) -> str:
    return " / ".join(f"{v:.1f}" for v in values.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["umxhq-random", "umx-preview"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per case")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--split-repeats", type=int, default=3, help="runs of the stage split (0: none)"
    )
    args = parser.parse_args()

    device = torch.device(args.device)
    precisions = ["fp32", "bf16"] + (["fp16"] if device.type == "cuda" else [])
    if device.type == "cpu" and not cpu_bf16_support()[0]:
        sys.exit(f"this CPU has no native bf16 ({cpu_bf16_support()[1]}): nothing to compare")
    info = common.machine()
    print(
        f"{info['cpu']}, {info['cores']} cores, torch {info['torch']}, unmix {info['unmix']}; "
        f"{cpu_bf16_support()[1]}; device {device}; {args.seconds:g} s of real music, "
        f"file to float WAV stems, {args.repeats} interleaved runs per case (medians)\n"
    )
    example, example_rate = audio_io.read(EXAMPLE)
    rows, quality, loads = [], [], {}
    splits: dict[int, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-precision-") as tmp:
        wav = common.write_music(Path(tmp) / "music.wav", args.seconds)
        music, rate = audio_io.read(wav)
        for name in args.models:
            seps = {p: loader(name)(p, device) for p in precisions}
            with common.threads(1):
                on_music = stems_sdr(seps, music, rate)
                on_example = stems_sdr(seps, example, example_rate)
            for p in precisions[1:]:
                quality.append((name, p, on_music[p], on_example[p]))
            for n in args.threads:
                with common.threads(n), neighbours() as load:
                    runs = time_files(seps, wav, Path(tmp), args.repeats)
                loads[name, n] = load
                for p in precisions:
                    rows.append((name, n, p, *summary(runs["fp32"], runs[p], args.seconds)))
                if name == args.models[0] and args.split_repeats and device.type == "cpu":
                    with common.threads(n):
                        splits[n] = split(seps, wav, args.split_repeats)
    targets = " / ".join(seps["fp32"].output_names)
    print(
        "| model | threads | precision | wall (s) | × real time | speed-up vs fp32 (wall) "
        "| CPU (s) | speed-up vs fp32 (CPU) | networks' share |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, n, p, wall, rt, ratio, cpu, cpu_ratio, share in rows:
        print(
            f"| {name} | {n} | {p} | {wall:.2f} | {rt:.1f} | {ratio:.2f}× | {cpu:.2f} "
            f"| {cpu_ratio:.2f}× | {share:.0%} |"
        )
    print(f"\nSDR of the stems against the fp32 stems (dB; {targets}):\n")
    print(f"| model | precision | {args.seconds:g} s of music | {EXAMPLE.name} |")
    print("|---|---|---|---|")
    for name, p, on_music, on_example in quality:
        print(f"| {name} | {p} | {fmt_sdr(on_music)} | {fmt_sdr(on_example)} |")
    for n, by_precision in splits.items():
        print_split(args.models[0], n, by_precision)
    print_goals(rows, quality, loads)


def print_goals(
    rows: list[tuple], quality: list[tuple], loads: dict[tuple[str, int], list[float]]
) -> None:
    """One line per model and thread count: the issue's goal (bf16 >= 1.6x fp32, stems
    >= 40 dB SDR against fp32), met or missed, and how busy the machine was meanwhile."""
    print("\nGoal (bf16 at least 1.6x faster than fp32, stems at least 40 dB SDR vs fp32):\n")
    worst = {name: min(min(m.values()), min(e.values())) for name, _, m, e in quality}
    for name, n, p, _, _, ratio, _, cpu_ratio, _ in rows:
        if p != "bf16":
            continue
        met = ratio >= GOAL_SPEEDUP and worst[name] >= GOAL_SDR
        load = loads.get((name, n))
        others = f"{load[0]:.2f} cores" if load else "unknown"
        busy = " -- NOT RELIABLE, the machine was busy: rerun" if load and load[0] > BUSY else ""
        print(
            f"- {name}, {n} thread{'s' * (n > 1)}: {ratio:.2f}x wall, {cpu_ratio:.2f}x CPU, "
            f"worst stem {worst[name]:.1f} dB -> {'met' if met else 'MISSED'} "
            f"(other processes meanwhile: {others}){busy}"
        )


def print_split(name: str, threads: int, splits: dict[str, dict[str, float]]) -> None:
    """The stage table and what it implies for the ratio."""
    what = "thread CPU seconds" if threads == 1 else "wall seconds"
    print(f"\nWhere the time goes ({name}, {threads} thread(s), {what}, medians):\n")
    print(f"| precision | {' | '.join(STAGES)} | total | outside the networks |")
    print("|---|" + "---|" * (len(STAGES) + 2))
    for p, stages in splits.items():
        total = sum(stages.values())
        cells = " | ".join(f"{stages[s]:.3f}" for s in STAGES)
        print(f"| {p} | {cells} | {total:.3f} | {total - stages['networks']:.3f} |")
    base = splits["fp32"]
    for p, stages in list(splits.items())[1:]:
        rest = sum(stages.values()) - stages["networks"]
        print(
            f"\n{p}: networks {base['networks'] / stages['networks']:.2f}× faster, whole "
            f"{sum(base.values()) / sum(stages.values()):.2f}×; with the networks taking no "
            f"time at all the whole could not pass {sum(base.values()) / rest:.1f}×"
        )


if __name__ == "__main__":
    main()
