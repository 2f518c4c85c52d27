"""ONNX export benchmark: onnxruntime (float32 and int8) against the torch Separator.

A 4-minute stereo mixture of real music (the MUSDB18 preview mixtures back to back) is
separated at the model rate through the same engine, driven as ``unmix separate`` drives it
(60-s segments, cross-faded; the automatic batch size), by the torch
:class:`~unmix.separator.Separator` and by the exported graph opened as ``unmix separate
--model FILE.onnx`` opens it (:func:`~unmix.export.load_onnx_separator`), with the same
thread count in all for torch and onnxruntime. The graph runs one segment at a time on
``N`` intra-op threads (the default); with ``--threads N >= 2``, ``--side-by-side`` adds rows
for ``--batch-size N``: ``N`` segments side by side, one thread each (the last, shorter
segment on all ``N``; its stems are checked to be bit-identical). Runs alternate (torch, float32, int8, torch, ...); medians of wall
time and of process CPU time are reported (on a shared machine the CPU time is the steadier
of the two). Quality: SDR of each ONNX output against the torch output on the whole file;
the int8 row's SDR is its cost against float32.

Models: ``umx-preview`` (the shipped model, trained) and random-weight ``umxhq``-size
weights (the test suite's scaled weights, so that every layer shapes the output).

    python benchmarks/bench_export.py                   # 1 thread, both models: ~3 min
    python benchmarks/bench_export.py --threads 2       # the same on two threads
    python benchmarks/bench_export.py --threads 2 --side-by-side --models umxhq-size
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sep_common as common
from unmix.engine.batcher import batching
from unmix.engine.segments import StreamingSeparator, plan_segments
from unmix.export import export_onnx, load_onnx_separator
from unmix.filtering import WienerSettings
from unmix.hub.loading import load_separator


def sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference**2) / np.sum((reference - estimate) ** 2)))


def separate_as_the_cli(separator, audio: np.ndarray, batch_size: int | None = None) -> np.ndarray:
    """The engine as ``unmix separate`` drives it: default segments, and the automatic batch
    size (1 for torch on the CPU; ``N`` for a graph on ``N`` threads: segments side by side)."""
    plan = plan_segments(separator)
    with batching(separator, plan, batch_size) as batcher:
        stream = StreamingSeparator(separator, plan) if batcher is None else batcher.stream(plan)
        parts = [*stream.push(audio), *stream.finish()]
    return np.concatenate(parts, axis=-1)


def run_model(name: str, source: str | Path, audio: np.ndarray, args, tmp: Path) -> list[str]:
    torch.set_num_threads(args.threads)
    torch_sep = load_separator(source, wiener=WienerSettings(niter=1), device="cpu")
    runners = {"torch": (lambda: torch_sep, None)}
    for quant in ("none", "int8"):
        path = tmp / f"{name}-{quant}.onnx"
        started = time.perf_counter()
        export_onnx(torch_sep, path, quantize=quant)
        print(f"{name}: export {quant} {time.perf_counter() - started:.1f} s", file=sys.stderr)
        label = "onnxruntime float32" if quant == "none" else "onnxruntime int8"
        # opened as `unmix separate --model FILE.onnx --threads N` opens it, for each run
        # (one graph in memory at a time: each keeps its memory arena)
        runners[label] = (partial(load_onnx_separator, path), None)
        if args.threads > 1 and args.side_by_side:  # --batch-size N: N segments at a time
            runners[f"{label}, side by side"] = (
                partial(load_onnx_separator, path), args.threads,
            )  # fmt: skip
    wall: dict[str, list[float]] = {k: [] for k in runners}
    cpu: dict[str, list[float]] = {k: [] for k in runners}
    outputs: dict[str, np.ndarray] = {}
    for _ in range(args.repeats):
        for label, (open_separator, batch_size) in runners.items():
            sep = open_separator()  # not timed
            started, cpu_started = time.perf_counter(), time.process_time()
            outputs[label] = separate_as_the_cli(sep, audio, batch_size)
            wall[label].append(time.perf_counter() - started)
            cpu[label].append(time.process_time() - cpu_started)
            del sep
            print(f"{name} {label}: {wall[label][-1]:.1f} s", file=sys.stderr)
    for label in runners:
        if label.endswith("side by side"):
            same = np.array_equal(outputs[label], outputs[label.split(",")[0]])
            print(f"{name} {label}: stems bit-identical to one at a time: {same}", file=sys.stderr)
    base, base_cpu = statistics.median(wall["torch"]), statistics.median(cpu["torch"])
    rows = []
    for label in runners:
        median, median_cpu = statistics.median(wall[label]), statistics.median(cpu[label])
        quality = "—" if label == "torch" else f"{sdr(outputs['torch'], outputs[label]):.1f}"
        rows.append(
            f"| {name} | {args.threads} | {label} | {median:.1f} | "
            f"{audio.shape[1] / 44100 / median:.1f}× | {base / median:.2f}× | "
            f"{median_cpu:.1f} | {base_cpu / median_cpu:.2f}× | {quality} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=240.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=["umxhq-size", "umx-preview"])
    parser.add_argument(
        "--side-by-side", action="store_true",
        help="with --threads N >= 2, also time the graphs with --batch-size N (N segments "
        "side by side, one thread each)",
    )  # fmt: skip
    args = parser.parse_args()
    started = time.perf_counter()
    audio = common.music(args.seconds).astype(np.float32)
    print(f"machine: {common.machine()}", file=sys.stderr)
    rows = [
        "| model | threads | runner | wall s (median) | × real time | vs torch (wall) "
        "| CPU s (median) | vs torch (CPU) | SDR vs torch (dB) |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            source: str | Path = name
            if name == "umxhq-size":
                source = common.write_model_folder(Path(tmp) / "umxhq")
            rows += run_model(name, source, audio, args, Path(tmp))
    print("\n".join(rows))
    print(f"({time.perf_counter() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
