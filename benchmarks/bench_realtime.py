"""Real-time benchmarks (docs/benchmarks.md, docs/realtime.md). One CPU thread throughout.

  python benchmarks/bench_realtime.py blocks  [--model DIR] [--blocks N] [--repeats R]
      per-block compute (block = hop) of the given causal model and of an umxhq-size causal
      model (hidden 512, 4 targets, n_fft 4096, random weights), in each precision (fp32,
      fp16, int8), interleaved, medians of R
  python benchmarks/bench_realtime.py precision --root MUSDB
      SDR of fp16/int8 streaming against fp32 streaming (the example clip and the validation
      clips) and against the true stems
  python benchmarks/bench_realtime.py wiener  --model DIR --root MUSDB
      SDR against the true stems on the validation clips: causal niter 0, causal niter 1
      (memory 1 s, 4 s, inf), and the offline filter (niter 1) on the same model
  python benchmarks/bench_realtime.py lookahead --model NAME_OR_DIR --root MUSDB
      lookahead mode (0.5, 1, 2 s) against offline separation of the same audio (the 14
      validation clips end to end, about 95 s; --clips N: the first N), and its compute
      per second of audio

  python benchmarks/bench_realtime.py paced --input WAV [--model NAME_OR_DIR]
      [--precisions fp32 int8] [--buffer-blocks 1 2] [--repeats 1] [--out DIR]
      `unmix stream WAV --realtime --threads 1 --buffer-blocks N` for each precision and N
      (one thread, interleaved, each in its own process); a table of overruns, compute
      p50/p99/max, slow blocks (and those spent off the CPU) and the host's steal time

  python benchmarks/bench_realtime.py files --root MUSDB --out DIR [--minutes 10]
      DIR/long10min.wav (the previews end to end) and DIR/umxhq-size-causal (the random
      umxhq-size causal model as a model folder), the inputs of the --realtime runs

SDR here is the global signal-to-distortion ratio 10·log10(Σ s² / Σ (s − ŝ)²) over all
channels and samples, with the reference ``s`` named in each table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from unmix import audio as audio_io
from unmix.config import ModelConfig
from unmix.filtering import WienerSettings
from unmix.hub.loading import load_separator, save_model
from unmix.models.umx import UMX
from unmix.realtime import CausalWiener, StreamSeparator
from unmix.separator import Separator
from unmix.tracks import VALIDATION_TRACKS

STEMS = ("mixture", "drums", "bass", "other", "vocals")


def sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    err = np.sum((reference - estimate) ** 2)
    return float(10 * np.log10(np.sum(reference**2) / max(err, 1e-20)))


def stream_all(stream: StreamSeparator, audio: np.ndarray, block: int) -> np.ndarray:
    outs = [stream.process(audio[:, i : i + block]) for i in range(0, audio.shape[1], block)]
    outs.append(stream.flush())
    return np.concatenate(outs, -1)[..., stream.latency :]


def per_block_ms(stream: StreamSeparator, blocks: int) -> tuple[list[float], list[float]]:
    """Wall and CPU (this thread's) milliseconds per block of ``hop`` samples."""
    block = stream.separator.config.n_hop
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal((stream.nb_channels, block * (blocks + 20)))).astype(
        np.float32
    )
    wall, cpu = [], []
    for i in range(blocks + 20):
        t, c = time.perf_counter(), time.thread_time()
        stream.process(audio[:, i * block : (i + 1) * block])
        wall.append(time.perf_counter() - t)
        cpu.append(time.thread_time() - c)
    return [1000 * t for t in wall[20:]], [1000 * t for t in cpu[20:]]  # 20 warm up


def umxhq_size_causal() -> Separator:
    cfg = ModelConfig(
        targets=("vocals", "drums", "bass", "other"), sample_rate=44100, n_fft=4096,
        n_hop=1024, nb_channels=2, hidden_size=512, nb_layers=3, unidirectional=True,
        max_bin=1487,
    )  # fmt: skip
    torch.manual_seed(0)
    return Separator(UMX.from_config(cfg), cfg, WienerSettings(niter=1)).freeze()


def cmd_blocks(args: argparse.Namespace) -> None:
    models = {"umx-rt-preview": load_separator(args.model, device="cpu", progress=False)}
    models["umxhq-size causal"] = umxhq_size_causal()
    runs = [(name, p) for name in models for p in args.precisions]
    results: dict[tuple[str, str], list[tuple[float, ...]]] = {k: [] for k in runs}
    for _ in range(args.repeats):  # interleaved, so that all see the same machine load
        for name, precision in runs:
            stream = StreamSeparator(models[name], precision=precision)
            ms, cpu = per_block_ms(stream, args.blocks)
            results[name, precision].append(
                (float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), max(ms),
                 float(np.percentile(cpu, 50)), float(np.percentile(cpu, 99)))
            )  # fmt: skip
    print("| model | precision | n_fft/hop | block (ms) | p50 (ms) | p99 (ms) | max (ms) "
          "| p99 / block | CPU p50 / p99 (ms) | CPU p99 / block |")  # fmt: skip
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, precision in runs:
        cfg = models[name].config
        block_ms = 1000 * cfg.n_hop / cfg.sample_rate
        p50, p99, top, c50, c99 = (
            statistics.median(r[k] for r in results[name, precision]) for k in range(5)
        )
        print(f"| {name} | {precision} | {cfg.n_fft}/{cfg.n_hop} | {block_ms:.1f} | "
              f"{p50:.2f} | {p99:.2f} | {top:.2f} | {p99 / block_ms:.0%} | "
              f"{c50:.2f} / {c99:.2f} | {c99 / block_ms:.0%} |")  # fmt: skip
    print(f"(one thread; medians of {args.repeats} interleaved repeats of {args.blocks} blocks)")


def cmd_precision(args: argparse.Namespace) -> None:
    """SDR of fp16/int8 streaming against fp32 streaming and against the true stems."""
    clips = [("example", audio_io.read(Path(args.example))[0])]
    clips += [(name, stems) for name, stems in validation_clips(args.root)]
    models = {"umx-rt-preview": load_separator(args.model, device="cpu", progress=False),
              "umxhq-size causal (random)": umxhq_size_causal()}  # fmt: skip
    print("| model | precision | SDR vs fp32 stream, median (min) dB | SDR vs true stems, mean "
          "over targets, median over clips (dB) |")  # fmt: skip
    print("|---|---|---:|---:|")
    for name, separator in models.items():
        targets = separator.targets
        per: dict[str, list[float]] = {p: [] for p in ("fp32", "fp16", "int8")}
        truth: dict[str, list[float]] = {p: [] for p in per}
        for clip, data in clips if name == "umx-rt-preview" else clips[: args.random_clips]:
            mix = data if clip == "example" else data[0]
            ref = stream_all(StreamSeparator(separator), mix, 512)
            for precision in per:
                out = ref if precision == "fp32" else stream_all(
                    StreamSeparator(separator, precision=precision), mix, 512
                )  # fmt: skip
                per[precision] += [sdr(r, o) for r, o in zip(ref, out, strict=True)]
                if clip != "example":
                    true = [data[STEMS.index(t)] for t in targets]
                    truth[precision].append(
                        float(np.mean([sdr(t, o) for t, o in zip(true, out, strict=True)]))
                    )
        for precision in ("fp16", "int8", "fp32"):
            vs = per[precision]
            cell = "exact" if precision == "fp32" else f"{np.median(vs):.1f} ({min(vs):.1f})"
            true_cell = f"{np.median(truth[precision]):.3f}" if truth[precision] else "-"
            print(f"| {name} | {precision} | {cell} | {true_cell} |")
    print(
        f"(example clip + {len(clips) - 1} validation clips, every target; block 512; "
        f"the random-weight model on the first {args.random_clips} clips)"
    )


def validation_clips(root: Path) -> list[tuple[str, np.ndarray]]:
    clips = []
    for name in sorted(VALIDATION_TRACKS):
        path = root / "train" / f"{name}.stem.mp4"
        if path.exists():
            stems, rate = audio_io.read_stems(path)
            assert rate == 44100
            clips.append((name, stems))
    return clips


def cmd_wiener(args: argparse.Namespace) -> None:
    clips = validation_clips(args.root)
    variants: dict[str, CausalWiener | None] = {
        "causal niter 0": CausalWiener(niter=0),
        "causal niter 1, memory 1 s": CausalWiener(niter=1, memory=1.0),
        "causal niter 1, memory 4 s": CausalWiener(niter=1, memory=4.0),
        "causal niter 1, memory inf": CausalWiener(niter=1, memory=float("inf")),
        "offline niter 1 (whole clip)": None,
    }
    separator = load_separator(args.model, device="cpu", progress=False)
    targets = separator.targets
    scores: dict[str, list[list[float]]] = {k: [] for k in variants}
    for _, stems in clips:
        mix = stems[0]
        refs = [stems[STEMS.index(t)] for t in targets]
        for name, wiener in variants.items():
            if wiener is None:
                with torch.inference_mode():
                    out = separator(torch.from_numpy(mix)[None])[0].numpy()
            else:
                out = stream_all(StreamSeparator(separator, wiener=wiener), mix, 512)
            scores[name].append([sdr(r, o) for r, o in zip(refs, out, strict=True)])
    print(f"| post-filter | {' | '.join(targets)} | mean |")
    print("|---|" + "---:|" * (len(targets) + 1))
    for name, rows in scores.items():
        med = np.median(np.asarray(rows), axis=0)
        cells = " | ".join(f"{v:.2f}" for v in med)
        print(f"| {name} | {cells} | {med.mean():.2f} |")
    print(f"(median over {len(clips)} validation clips of the global SDR against the true stems)")


def cmd_lookahead(args: argparse.Namespace) -> None:
    clips = validation_clips(args.root)[: args.clips]
    mix = np.concatenate([stems[0] for _, stems in clips], 1)
    separator = load_separator(args.model, device="cpu", progress=False)
    t = time.perf_counter()
    with torch.inference_mode():
        offline = separator(torch.from_numpy(mix)[None])[0].numpy()
    offline_s = time.perf_counter() - t
    seconds = mix.shape[1] / 44100
    print(f"offline: {offline_s / seconds:.3f} s of compute per s of audio ({seconds:.0f} s)")
    print(f"| lookahead (s) | chunk (s) | latency (ms) | {' | '.join(separator.targets)} "
          "| compute (s per s of audio) |")  # fmt: skip
    print("|---:|---:|---:|" + "---:|" * (len(separator.targets) + 1))
    for lookahead in (0.5, 1.0, 2.0):
        stream = StreamSeparator(
            separator, lookahead=lookahead, chunk=args.chunk, context=args.context
        )
        t = time.perf_counter()
        out = stream_all(stream, mix, 4096)
        cost = (time.perf_counter() - t) / seconds
        cells = " | ".join(f"{sdr(o, s):.1f}" for o, s in zip(offline, out, strict=True))
        print(f"| {lookahead} | {args.chunk} | {stream.latency_ms:.0f} | {cells} | {cost:.3f} |")
    print("(SDR of the lookahead output against the offline separation of the same audio)")


def cmd_files(args: argparse.Namespace) -> None:
    """The inputs of the --realtime runs: a long WAV and the umxhq-size causal model folder."""
    clips = sorted((args.root / "train").glob("*.stem.mp4"))
    pieces, total = [], 0
    need = int(args.minutes * 60 * 44100)
    while total < need:  # the previews end to end (looped if too few)
        for path in clips:
            mix = audio_io.read_stems(path)[0][0]
            pieces.append(mix[:, : need - total])
            total += pieces[-1].shape[1]
            if total >= need:
                break
    audio_io.write(args.out / f"long{args.minutes:g}min.wav", np.concatenate(pieces, 1), 44100)
    separator = umxhq_size_causal()
    save_model(args.out / "umxhq-size-causal", separator.config, separator.model)
    print(f"wrote {args.out}/long{args.minutes:g}min.wav and {args.out}/umxhq-size-causal")


def cmd_paced(args: argparse.Namespace) -> None:
    """Paced ``unmix stream`` runs, one per precision and number of output blocks."""
    rows = []
    for repeat in range(args.repeats):
        for precision in args.precisions:
            for buffers in args.buffer_blocks:
                report = args.out / f"paced-{precision}-n{buffers}-{repeat}.json"
                cmd = [sys.executable, "-m", "unmix", "stream", str(args.input), "--model",
                       args.model, "--precision", precision, "--realtime", "--threads", "1",
                       "--buffer-blocks", str(buffers), "--out-dir", str(args.out / "stems"),
                       "--force", "--report", str(report), "-q"]  # fmt: skip
                load = os.getloadavg()[0]
                env = {**os.environ, "OMP_NUM_THREADS": "1"}
                subprocess.run(cmd, check=True, env=env)
                rows.append((json.loads(report.read_text()), load))
    print(
        "| model | precision | N | output latency (ms) | blocks | overruns | compute p50 / "
        "p99 / max (ms) | response max (ms) | slow blocks (off CPU) | steal (ms) | load |"
    )
    print("|---|---|---:|---:|---:|---:|---|---:|---|---:|---:|")
    for r, load in rows:
        print(f"| {args.model} | {r['precision']} | {r['buffer_blocks']} | "
              f"{r['output_latency_ms']:.1f} | {r['blocks']} | {r['overruns']} | "
              f"{r['p50_ms']:.2f} / {r['p99_ms']:.2f} / {r['max_ms']:.2f} | "
              f"{r['response_max_ms']:.1f} | {r['slow_blocks']} ({r['slow_blocks_off_cpu']}) | "
              f"{r['steal_ms'] or 0:.0f} | {load:.1f} |")  # fmt: skip
    print(f"(one thread, block = hop, {args.input}; load average at each start)")


def main() -> None:
    torch.set_num_threads(1)
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("blocks")
    b.add_argument("--model", default="umx-rt-preview")
    b.add_argument("--blocks", type=int, default=1000)
    b.add_argument("--repeats", type=int, default=3)
    b.add_argument("--precisions", nargs="+", default=["fp32", "fp16", "int8"])
    pr = sub.add_parser("precision")
    pr.add_argument("--model", default="umx-rt-preview")
    pr.add_argument("--root", type=Path, required=True)
    pr.add_argument("--example", default="examples/nightowl-preview.m4a")
    pr.add_argument("--random-clips", type=int, default=4)
    w = sub.add_parser("wiener")
    w.add_argument("--model", default="umx-rt-preview")
    w.add_argument("--root", type=Path, required=True)
    la = sub.add_parser("lookahead")
    la.add_argument("--model", default="umx-preview")
    la.add_argument("--root", type=Path, required=True)
    la.add_argument("--chunk", type=float, default=0.5)
    la.add_argument("--clips", type=int, default=14, help="validation clips, end to end")
    la.add_argument("--context", type=float, default=None, help="seconds (default: lookahead)")
    pc = sub.add_parser("paced")
    pc.add_argument("--input", type=Path, required=True)
    pc.add_argument("--model", default="umx-rt-preview")
    pc.add_argument("--precisions", nargs="+", default=["fp32", "int8"])
    pc.add_argument("--buffer-blocks", nargs="+", type=int, default=[1, 2])
    pc.add_argument("--repeats", type=int, default=1)
    pc.add_argument("--out", type=Path, default=Path("/tmp/rt/paced"))
    f = sub.add_parser("files")
    f.add_argument("--root", type=Path, required=True)
    f.add_argument("--out", type=Path, required=True)
    f.add_argument("--minutes", type=float, default=10.0)
    args = p.parse_args()
    commands = {"files": cmd_files, "blocks": cmd_blocks, "precision": cmd_precision,
                "wiener": cmd_wiener, "lookahead": cmd_lookahead, "paced": cmd_paced}  # fmt: skip
    commands[args.cmd](args)


if __name__ == "__main__":
    main()
