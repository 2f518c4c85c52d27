"""Separation benchmark: unmix vs the reference implementation (openunmix 1.3.0).

Both run the same random-weight ``umxhq``-config models (the same ``.pth`` files) with
``niter=1`` and ``wiener_win_len=300`` on real music (the MUSDB18 preview mixtures back to
back, looped for long files), each case in a fresh process whose peak resident memory is
read from the kernel (``wait4``). Both are timed file to files: decode (the same PyAV
decoder), separate, write four float WAV stems; unmix streams in segments, the reference
separates the whole file at once (as its ``umx`` command does).

Also measured in-process: the largest difference between the two implementations' stems
on 30 s, where the time goes (stages) on 30 s, and the SDR of unmix's segmented output
against whole-track separation on real music (seams).

    python benchmarks/bench_separate.py                      # full run, writes docs
    python benchmarks/bench_separate.py --durations 30 --reference-durations 30 --seam-seconds 70

The results replace the separation section of docs/benchmarks.md (between its markers).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
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
from unmix import audio as audio_io
from unmix.api import separate_array, separate_file
from unmix.engine import segments
from unmix.filtering import WienerSettings
from unmix.hub.loading import load_separator

BEGIN, END = "<!-- bench_separate:begin -->", "<!-- bench_separate:end -->"
#: the reference's measured growth of peak memory (bytes per second of audio), plus margin
REFERENCE_BYTES_PER_SECOND = 27e6


def _rss_now() -> float:
    """Current resident memory of this process (MiB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def worker(args: argparse.Namespace) -> None:
    """One measured case in this (fresh) process; prints one JSON line."""
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.worker == "unmix":
        wiener = WienerSettings(niter=1, wiener_win_len=300)
        sep = load_separator(args.model, device=device, wiener=wiener)
        loaded = _rss_now()
        start = time.perf_counter()
        report = separate_file(sep, args.input, Path(args.out) / "stems", fmt="wav")
        if device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        seconds = report.seconds
    else:
        sep = common.reference_separator(Path(args.model)).to(device)
        loaded = _rss_now()
        start = time.perf_counter()
        audio, rate = audio_io.read(args.input)  # the same decoder as unmix
        with torch.no_grad():
            stems = sep(torch.from_numpy(audio)[None].to(device))[0].cpu().numpy()
        folder = Path(args.out) / "reference"
        folder.mkdir(parents=True, exist_ok=True)
        for name, stem in zip(common.CONFIG.targets, stems, strict=True):
            sf.write(folder / f"{name}.wav", stem.T, rate, subtype="FLOAT")
        elapsed = time.perf_counter() - start
        seconds = audio.shape[1] / rate
    gpu = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    print(
        json.dumps(
            {"seconds": seconds, "elapsed": elapsed, "rss_loaded_mib": loaded, "gpu_mib": gpu}
        )
    )


def run_case(impl: str, audio: Path, model: Path, out: Path, threads: int, device: str) -> dict:
    """Run :func:`worker` in a child process; adds its peak resident memory."""
    cmd = [sys.executable, __file__, "--worker", impl, "--input", str(audio), "--model", str(model)]
    cmd += ["--out", str(out), "--threads", str(threads), "--device", device]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    stdout, stderr = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        return {"impl": impl, "error": stderr.decode(errors="replace").strip().splitlines()[-1:]}
    result = json.loads(stdout.decode().strip().splitlines()[-1])
    result.update(impl=impl, peak_rss_mib=usage.ru_maxrss / 1024)
    result["rtf"] = result["seconds"] / result["elapsed"]
    return result


def equal_output(model: Path, x: np.ndarray) -> float:
    """Largest absolute difference between unmix's and the reference's stems."""
    ours = load_separator(model, device="cpu", wiener=WienerSettings(niter=1))
    stems = separate_array(ours, x, 44100)
    got = np.stack([stems[t] for t in ours.output_names])
    with torch.no_grad():
        ref = common.reference_separator(model)(torch.from_numpy(x)[None])[0].numpy()
    return float(np.abs(got - ref).max())


#: the stage that holds the Wiener EM and the ISTFT
WIENER_ISTFT = "Wiener EM + ISTFT"


def stages_unmix(model: Path, x: np.ndarray) -> dict[str, float]:
    """Seconds per stage of one whole-track unmix separation of ``x``."""
    sep = load_separator(model, device="cpu", wiener=WienerSettings(niter=1))
    with torch.inference_mode():
        sep(torch.from_numpy(x[:, :132300])[None])  # warm-up (first LSTM call primes oneDNN)
    timer = common.StageTimer()
    timer.hook(sep.stft, "STFT")
    # the networks run side by side on CPU: time the stage, not each network
    sep.source_magnitudes = timer.wrap(sep.source_magnitudes, "four models")  # type: ignore[method-assign]
    # the Wiener filter and the inverse FFT run interleaved, a few frames at a time while in
    # cache (Separator.wiener_istft): one stage
    sep.wiener_istft = timer.wrap(sep.wiener_istft, WIENER_ISTFT)  # type: ignore[method-assign]
    with torch.inference_mode():
        start = time.perf_counter()
        sep(torch.from_numpy(x)[None])
        total = time.perf_counter() - start
    return {**timer.totals, "total": total}


def stages_reference(model: Path, x: np.ndarray) -> dict[str, float]:
    """Seconds per stage of one reference separation of ``x``."""
    openunmix = common.import_openunmix()
    sep = common.reference_separator(model)
    with torch.no_grad():
        sep(torch.from_numpy(x[:, :132300])[None])  # warm-up
    timer = common.StageTimer()
    timer.hook(sep.stft, "STFT")
    for net in sep.target_models.values():
        timer.hook(net, "four models")
    timer.hook(sep.istft, "ISTFT")
    original = openunmix.model.wiener
    openunmix.model.wiener = timer.wrap(original, "Wiener EM")
    try:
        with torch.no_grad():
            start = time.perf_counter()
            sep(torch.from_numpy(x)[None])
            total = time.perf_counter() - start
    finally:
        openunmix.model.wiener = original
    totals = dict(timer.totals)
    totals[WIENER_ISTFT] = totals.pop("Wiener EM", 0.0) + totals.pop("ISTFT", 0.0)
    return {**totals, "total": total}


def seams(model: Path, seconds: float) -> dict[str, float]:
    """SDR (dB) of the default segmented separation against whole-track separation."""
    sep = load_separator(model, device="cpu", wiener=WienerSettings(niter=1))
    x = common.music(seconds)
    whole = segments.separate_segment(sep, x)
    plan = segments.plan_segments(sep)
    segmented = segments.separate_long(sep, x, plan)
    result = {"segments": float(plan.nb_segments(x.shape[1]))}
    for j, name in enumerate(sep.output_names):
        err = np.sum((whole[j] - segmented[j]) ** 2)
        result[name] = float(10 * np.log10(np.sum(whole[j] ** 2) / err))
    return result


def _fmt_duration(seconds: float) -> str:
    return f"{seconds / 60:.3g} min" if seconds >= 60 else f"{seconds:.3g} s"


def render(results: dict) -> str:
    """The docs section."""
    m = results["machine"]
    lines = [
        BEGIN,
        "## Separation: speed and memory (`benchmarks/bench_separate.py`)",
        "",
        f"Measured {results['date']} on {m['cpu']} ({m['cores']} cores available, {m['memory']} "
        f"RAM), {results['threads']} PyTorch threads, device `{results['device']}`. Python "
        f"{m['python']}, torch {m['torch']}, numpy {m['numpy']}, av {m['av']}, soxr {m['soxr']}, "
        f"unmix {m['unmix']}, openunmix {m['openunmix']}.",
        "Other agents shared the machine's cores while it ran, so absolute timings are noisy; "
        "each case ran in its own process and the two implementations alternate.",
        "",
        "Both use the same random-weight `umxhq`-config models (the same `.pth` files), "
        "`niter=1`, `wiener_win_len=300`, on real music (MUSDB18 preview mixtures back to "
        "back, looped for the long files). Both are timed **file to files**: decoding (the "
        "same PyAV decoder), separation, writing the four stems as float WAV. unmix streams "
        "with its default 56.8-s segments and 8-s overlaps; the reference separates the "
        "whole file at once, as its own `umx` command does. "
        "Real-time factor = audio seconds / wall seconds; peak memory = the process's peak "
        "resident set (`wait4`), models and Python included.",
        "",
        "Files up to 3 min: best of "
        f"{results['repeat']} alternating runs each (peak memory: the largest of them); longer "
        "files: one run each. *load* is the 1-minute load average when the case started.",
        "",
        "| audio | unmix RTF | unmix peak memory | openunmix RTF | openunmix peak memory "
        "| speed-up | load |",
        "|---|---|---|---|---|---|---|",
    ]
    for case in results["cases"]:
        ours, ref = case.get("unmix", {}), case.get("openunmix", {})
        ref_rtf = f"{ref['rtf']:.1f}×" if "rtf" in ref else ref.get("note", "—")
        ref_mem = f"{ref['peak_rss_mib'] / 1024:.2f} GiB" if "rtf" in ref else "—"
        speedup = f"{ours['rtf'] / ref['rtf']:.1f}×" if "rtf" in ref and "rtf" in ours else "—"
        our_rtf = f"{ours['rtf']:.1f}×" if "rtf" in ours else str(ours.get("error", "—"))
        our_mem = f"{ours['peak_rss_mib'] / 1024:.2f} GiB" if "rtf" in ours else "—"
        lines.append(
            f"| {_fmt_duration(case['seconds'])} | {our_rtf} | {our_mem} | {ref_rtf} | "
            f"{ref_mem} | {speedup} | {case['load']:.1f} |"
        )
    lines += [
        "",
        f"Equal output: largest difference between the stems of the two on "
        f"{_fmt_duration(results['parity_seconds'])}: {results['parity_max_abs']:.1e} "
        "(one segment, i.e. exactly whole-track processing).",
        "",
    ]
    lines += _stage_table(results)
    seam = results["seams"]
    targets = [k for k in seam if k != "segments"]
    lines += [
        "",
        f"Seams: SDR of segmented against whole-track separation on "
        f"{_fmt_duration(results['seam_seconds'])} of real music "
        f"({int(seam['segments'])} segments): "
        + ", ".join(f"{t} {seam[t]:.1f} dB" for t in targets)
        + " (requirement: ≥ 30 dB).",
        END,
    ]
    return "\n".join(lines) + "\n"


def _stage_table(results: dict) -> list[str]:
    stages = ["STFT", "four models", WIENER_ISTFT]
    ours, ref = results["stages"]["unmix"], results["stages"]["openunmix"]
    rows = [
        f"Where the time goes on {_fmt_duration(results['parity_seconds'])} (one whole-track "
        "call, seconds and share of the total):",
        "",
        "| stage | unmix | openunmix |",
        "|---|---|---|",
    ]
    for stage in [*stages, "other"]:
        cells = []
        for data in (ours, ref):
            value = (
                data["total"] - sum(data.get(s, 0.0) for s in stages)
                if stage == "other"
                else data.get(stage, 0.0)
            )
            cells.append(f"{value:.2f} s ({100 * value / data['total']:.0f} %)")
        rows.append(f"| {stage} | {cells[0]} | {cells[1]} |")
    rows.append(f"| total | {ours['total']:.2f} s | {ref['total']:.2f} s |")
    return rows


def write_doc(path: Path, section: str) -> None:
    """Replace the section between the markers (or append it)."""
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        text = head + section + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--durations", type=float, nargs="+", default=[30, 180, 600, 3600])
    parser.add_argument("--reference-durations", type=float, nargs="+", default=[30, 180, 600])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3, help="runs of files up to 3 min")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--parity-seconds", type=float, default=30)
    parser.add_argument("--seam-seconds", type=float, default=300)
    parser.add_argument("--doc", type=Path, default=common.REPO / "docs" / "benchmarks.md")
    parser.add_argument("--json", type=Path, default=None, help="also save the raw results")
    parser.add_argument(
        "--cases", type=Path, default=None, help="take the file cases from an earlier run's log"
    )
    parser.add_argument("--worker", choices=["unmix", "openunmix"], help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    results = run_all(args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    write_doc(args.doc, render(results))
    print(render(results))


def measure(args: argparse.Namespace, seconds: float, audio: Path, model: Path, out: Path) -> dict:
    """Both implementations on one file, alternating; the best of ``--repeat`` runs for
    short files (the machine is shared), one run each for long ones."""
    case: dict = {"seconds": seconds, "load": os.getloadavg()[0]}
    impls = ["unmix"]
    if seconds not in args.reference_durations:
        case["openunmix"] = {"note": "not run (memory grows ~25 MB/s)"}
    elif REFERENCE_BYTES_PER_SECOND * seconds + 2**30 < 0.9 * common.available_memory():
        impls.append("openunmix")
    else:
        need = (REFERENCE_BYTES_PER_SECOND * seconds + 2**30) / 2**30
        case["openunmix"] = {"note": f"needs ~{need:.0f} GiB, did not fit"}
    runs: dict[str, list[dict]] = {impl: [] for impl in impls}
    for _ in range(args.repeat if seconds <= 180 else 1):
        for impl in impls:
            runs[impl].append(run_case(impl, audio, model, out, args.threads, args.device))
            for stem in out.rglob("*.wav"):
                stem.unlink()
            print(json.dumps({"seconds": seconds, impl: runs[impl][-1]}), flush=True)
    for impl, results in runs.items():
        ok = [r for r in results if "rtf" in r]
        if not ok:
            case[impl] = results[-1]
            continue
        best = max(ok, key=lambda r: r["rtf"])
        peak = max(r["peak_rss_mib"] for r in ok)
        case[impl] = {**best, "peak_rss_mib": peak, "runs": len(ok)}
    return case


def run_all(args: argparse.Namespace) -> dict:
    results: dict = {
        "date": datetime.date.today().isoformat(),
        "machine": common.machine(),
        "threads": args.threads,
        "repeat": args.repeat,
        "device": args.device,
        "cases": [],
    }
    with tempfile.TemporaryDirectory(prefix="bench-separate-") as tmp:
        work = Path(tmp)
        model = common.write_model_folder(work / "model")
        if args.cases:  # reuse the per-file measurements of an earlier run's log
            lines = args.cases.read_text().splitlines()
            found = [json.loads(x) for x in lines if x.startswith("{") and '"load"' in x]
            results["cases"] = found
        for seconds in [] if args.cases else args.durations:
            audio = common.write_music(work / f"music-{seconds:g}s.wav", seconds)
            case = measure(args, seconds, audio, model, work / "out")
            results["cases"].append(case)
            print(json.dumps(case), flush=True)
            audio.unlink()
        with common.threads(args.threads):
            x = common.music(args.parity_seconds)
            results["parity_seconds"] = args.parity_seconds
            results["parity_max_abs"] = equal_output(model, x)
            results["stages"] = {
                "unmix": stages_unmix(model, x),
                "openunmix": stages_reference(model, x),
            }
            results["seam_seconds"] = args.seam_seconds
            results["seams"] = seams(model, args.seam_seconds)
    return results


if __name__ == "__main__":
    main()
