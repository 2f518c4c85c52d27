"""The ONNX speed goal as a user meets it: ``unmix separate`` of a 4-minute file, whole CLI.

A 4-minute stereo WAV of real music (the MUSDB18 preview mixtures back to back) and a
random-weight umxhq-size model folder are written once; the folder is exported as a float32
and an int8 graph (``unmix.export.export_onnx``, niter 1, the chunked layout; with
``--whole`` also the whole-input layout of earlier versions, for comparison). Then
``unmix separate FILE --model M --threads N -o DIR`` runs as a separate process for the
torch folder and each graph in turn (torch, float32, int8, torch, ...), timing wall clock,
process CPU (user + system) and peak resident memory; medians per runner, speed-ups against
the torch runs of the same thread count. The CLI's process start, imports, model loading,
decoding and writing four stems are all inside the figure.

    python benchmarks/bench_export_cli.py                       # 1 and 2 threads, ~6 min
    python benchmarks/bench_export_cli.py --threads 1 --repeats 3
    python benchmarks/bench_export_cli.py --threads 2 --batch-size 1   # also one at a time
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sep_common as common
from unmix.export import export_onnx
from unmix.filtering import WienerSettings
from unmix.hub.loading import load_separator


def prepare(folder: Path, seconds: float, whole: bool) -> tuple[Path, dict[str, Path]]:
    """The WAV and the models: ``{label: model path}``."""
    wav = folder / "music.wav"
    sf.write(wav, common.music(seconds).T, 44100, subtype="FLOAT")
    source = common.write_model_folder(folder / "umxhq")
    torch.set_num_threads(1)
    separator = load_separator(str(source), wiener=WienerSettings(niter=1), device="cpu")
    models = {"torch": source}
    for quant in ("none", "int8"):
        for layout in ("chunked", "whole") if whole else ("chunked",):
            name = "float32" if quant == "none" else "int8"
            label = f"onnx {name}" + (" (whole-input graph)" if layout == "whole" else "")
            path = folder / f"umxhq-{quant}-{layout}.onnx"
            export_onnx(separator, path, quantize=quant, layout=layout)
            models[label] = path
    return wav, models


#: runs the CLI and writes its peak resident memory (VmHWM, kB: reset by exec, unlike
#: ru_maxrss, which keeps the forking parent's peak) to the file named first
PEAK_WRAPPER = (
    "import atexit, runpy, sys\n"
    "path = sys.argv.pop(1)\n"
    "def peak():\n"
    "    status = open('/proc/self/status').read()\n"
    "    open(path, 'w').write(status.split('VmHWM:')[1].split()[0])\n"
    "atexit.register(peak)\n"
    "sys.argv[0] = 'unmix'\n"
    "runpy.run_module('unmix', run_name='__main__')\n"
)


def run_cli(
    wav: Path, model: Path, threads: int, batch: int | None, out: Path
) -> tuple[float, float, float]:
    """Wall s, CPU s (user + system) and peak RSS (GB) of one ``unmix separate``."""
    shutil.rmtree(out, ignore_errors=True)
    peak_file = out.parent / "peak.txt"
    cmd = [sys.executable, "-c", PEAK_WRAPPER, str(peak_file), "separate", str(wav)]
    cmd += ["--model", str(model)]
    cmd += ["--threads", str(threads), "-o", str(out), "-q"]
    if batch:
        cmd += ["--batch-size", str(batch)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    started = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        child = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own usage and peak memory
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode:
            err.seek(0)
            raise RuntimeError(f"{' '.join(cmd)} failed: {err.read().decode()[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, int(peak_file.read_text()) / 1e6


def stems(out: Path) -> np.ndarray:
    files = sorted(out.rglob("*.wav"))
    return np.stack([sf.read(f, dtype="float32")[0] for f in files])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=240.0)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=None,
                        help="also run the graphs with --batch-size N (1: one segment at a "
                        "time, the default before session 8)")  # fmt: skip
    parser.add_argument("--whole", action="store_true", help="also the whole-input graphs")
    args = parser.parse_args()
    print(f"machine: {common.machine()}", file=sys.stderr)
    rows = [
        "| threads | runner | wall s (median) | × real time | vs torch (wall) | CPU s | "
        "vs torch (CPU) | peak memory (GB) | SDR vs torch (dB) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    with tempfile.TemporaryDirectory(prefix="bench-export-cli-") as tmp:
        folder = Path(tmp)
        wav, models = prepare(folder, args.seconds, args.whole)
        for threads in args.threads:
            runners = [(label, path, None) for label, path in models.items()]
            if args.batch_size and threads > 1:
                runners += [
                    (f"{label}, --batch-size {args.batch_size}", path, args.batch_size)
                    for label, path in models.items()
                    if label != "torch"
                ]
            times: dict[str, list[tuple[float, float, float]]] = {r[0]: [] for r in runners}
            outputs: dict[str, np.ndarray] = {}
            for round_ in range(args.repeats):
                for label, path, batch in runners:
                    out = folder / "out"
                    times[label].append(run_cli(wav, path, threads, batch, out))
                    outputs[label] = stems(out)
                    print(f"{threads} thr {label}: {times[label][-1][0]:.1f} s", file=sys.stderr)
                ratios = ", ".join(
                    f"{label} {times['torch'][-1][0] / times[label][-1][0]:.2f}×"
                    for label, _, _ in runners[1:]
                )  # this round's runs against this round's torch run
                print(f"{threads} thr, round {round_ + 1}: {ratios}", file=sys.stderr)
            base_wall = statistics.median(t[0] for t in times["torch"])
            base_cpu = statistics.median(t[1] for t in times["torch"])
            for label, _, _ in runners:
                wall = statistics.median(t[0] for t in times[label])
                cpu = statistics.median(t[1] for t in times[label])
                peak = max(t[2] for t in times[label])
                ref, got = outputs["torch"], outputs[label]
                quality = "—" if label == "torch" else (
                    f"{10 * np.log10(np.sum(ref**2) / np.sum((ref - got) ** 2)):.1f}"
                )  # fmt: skip
                rows.append(
                    f"| {threads} | {label} | {wall:.1f} | {args.seconds / wall:.1f}× | "
                    f"{base_wall / wall:.2f}× | {cpu:.1f} | {base_cpu / cpu:.2f}× | "
                    f"{peak:.2f} | {quality} |"
                )
    print("\n".join(rows))


if __name__ == "__main__":
    main()
