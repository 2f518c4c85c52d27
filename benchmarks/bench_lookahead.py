"""Lookahead mode against offline separation (docs/realtime.md, "Lookahead mode").

  OMP_NUM_THREADS=1 python benchmarks/bench_lookahead.py --root MUSDB [--clips 14]
      [--model umx-preview] [--old]
      the stream (StreamSeparator, blocks of 4096) with the default (carried) engine at
      lookaheads 0.5, 1, 2 s (chunk 1 s) and 1 s (chunk 0.5 s); --old adds the windowed
      engine (context 3 s, chunk 1 s). SDR of the stream's output against the offline
      separation of the same audio; compute per second of audio and × offline, one thread
  OMP_NUM_THREADS=1 python benchmarks/bench_lookahead.py --root MUSDB --umxhq-size --clips 3
      the same with a random-weight umxhq-size bidirectional UMX (hidden 512, 4 targets,
      n_fft 4096): its compute cost (its SDR against its own offline output is not that of
      a trained model)
  OMP_NUM_THREADS=1 python benchmarks/bench_lookahead.py --root MUSDB --decompose
      where the error comes from (below; about 6 minutes)

Decomposition. Everything runs on the STFT of the validation clips end to end (as
``bench_realtime.py lookahead``); the offline separation of that audio is the reference.
Designs (lookahead A frames, chunk b frames, past context p frames):

* ``window P/B``: the model on frames ``[c·b − p, (c+1)·b + a)``, chunk kept (the
  windowed engine, emulated on frames: no STFT edge effects);
* ``carried B``: the bidirectional LSTM run layer by layer, each layer's forward direction
  carried from chunk to chunk (its state at the chunk end), its backward direction started
  at the end of the lookahead (zeros): frames ``[c·b, (c+1)·b + a)`` per chunk.

Rows: model magnitudes against the offline model's (``model``), time-domain SDR with
``niter 0`` for both (``niter0``), the offline Wiener filter on the design's magnitudes
(``wiener=offline grid``: only the model differs), and the filters a stream can run:
``wiener=window`` (statistics of the design's window) and ``wiener=grid`` (running sums over
the known frames of the offline filter's current 300-frame window, lookahead included).
Nominal cost: network frames run per frame of output.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from unmix.config import ModelConfig
from unmix.filtering import WienerSettings, wiener_sources
from unmix.hub.loading import load_separator
from unmix.models.umx import UMX, OpenUnmix
from unmix.realtime import StreamSeparator
from unmix.separator import Separator
from unmix.transforms import magnitude

sys.path.insert(0, str(Path(__file__).parent))
from bench_realtime import sdr, stream_all, validation_clips

Design = Callable[[OpenUnmix, Tensor], Tensor]


def model_window(p: int, b: int, a: int) -> Design:
    """The windowed engine on frames: ``x (N, 1, C, F)`` → mask·x ``(N, 1, C, F)``."""

    def run(net: OpenUnmix, x: Tensor) -> Tensor:
        N, outs = x.shape[0], []
        for s in range(0, N, b):
            lo, hi = max(0, s - p), min(N, s + b + a)
            xs = x[lo:hi]
            y = net.decode(net.skip(net.encode(xs)), x.shape[2]) * xs
            outs.append(y[s - lo : s - lo + b])
        return torch.cat(outs)

    return run


def model_carried(b: int, a: int) -> Design:
    """Forward directions carried between chunks, backward ones from the lookahead's end."""

    def run(net: OpenUnmix, x: Tensor) -> Tensor:
        layers = split_lstm(net.lstm)
        states: list[tuple[Tensor, Tensor] | None] = [None] * len(layers)
        N, outs = x.shape[0], []
        for s in range(0, N, b):
            xs = x[s : min(N, s + b + a)]
            h = net.encode(xs)
            inp = h
            n = min(b, xs.shape[0])
            for k, (fwd, bwd) in enumerate(layers):
                f1, states_k = fwd(inp[:n], states[k])
                f2, _ = fwd(inp[n:], states_k) if inp.shape[0] > n else (f1[:0], None)
                states[k] = states_k
                back, _ = bwd(inp.flip(0))
                inp = torch.cat([torch.cat([f1, f2]), back.flip(0)], -1)
            y = net.decode(torch.cat([h, inp], -1), x.shape[2]) * xs
            outs.append(y[:n])
        return torch.cat(outs)

    return run


def split_lstm(lstm: torch.nn.LSTM) -> list[tuple[torch.nn.LSTM, torch.nn.LSTM]]:
    """One single-layer LSTM per layer and direction, with the weights of ``lstm``."""
    layers = []
    for k in range(lstm.num_layers):
        pair = []
        for suffix in ("", "_reverse"):
            size = lstm.input_size if k == 0 else 2 * lstm.hidden_size
            one = torch.nn.LSTM(size, lstm.hidden_size, 1)
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(one, f"{name}_l0").data = getattr(lstm, f"{name}_l{k}{suffix}").data
            pair.append(one.eval())
        layers.append((pair[0], pair[1]))
    return layers


def run_model(separator: Separator, X: Tensor, design: Design | None) -> Tensor:
    """``X (1, C, F, N)`` → ``(J, C, N, F)`` magnitudes."""
    model = separator.model
    assert isinstance(model, UMX)
    x = X.permute(3, 0, 1, 2)
    outs = []
    for t in model.targets:
        net = model.branch(t)
        y = (
            net(X).permute(0, 1, 3, 2)[0]
            if design is None
            else design(net, x)[:, 0].transpose(0, 1)
        )
        outs.append(y)
    return torch.stack(outs)


def wiener_grid(
    V: Tensor, mix: Tensor, separator: Separator, groups: list[tuple[int, int, int, int]]
) -> Tensor:
    """Wiener per group ``(out_lo, out_hi, stat_lo, stat_hi)``: the frames
    ``[out_lo, out_hi)`` filtered with the statistics of ``[stat_lo, stat_hi)``."""
    out = mix.new_zeros(V.shape[0], *mix.shape)
    for lo, hi, slo, shi in groups:
        y = wiener_sources(V[:, :, slo:shi], mix[:, slo:shi], separator.wiener)
        out[:, :, lo:hi] = y[:, :, lo - slo : hi - slo]
    return out


def groups_offline(N: int, w: int) -> list[tuple[int, int, int, int]]:
    return [(s, min(N, s + w), s, min(N, s + w)) for s in range(0, N, w)]


def groups_window(N: int, p: int, b: int, a: int) -> list[tuple[int, int, int, int]]:
    return [(s, min(N, s + b), max(0, s - p), min(N, s + b + a)) for s in range(0, N, b)]


def groups_grid(N: int, w: int, b: int, a: int) -> list[tuple[int, int, int, int]]:
    out = []
    for s in range(0, N, b):
        e = min(N, s + b)
        for ws in range(s - s % w, e, w):  # offline windows the chunk touches
            lo, hi = max(s, ws), min(e, ws + w)
            out.append((lo, hi, ws, min(N, ws + w, s + b + a)))
    return out


def to_audio(separator: Separator, Y: Tensor, length: int) -> np.ndarray:
    """``(J, C, N, F)`` complex → ``(J, C, T)``."""
    acc = Y.real.new_zeros(1, Y.shape[0], Y.shape[1], separator.istft.padded_length(Y.shape[2]))
    separator.istft.overlap_add(Y, acc[0], 0)
    return separator.istft.normalize(acc, Y.shape[2], length)[0].numpy()


def decompose(separator: Separator, mix_np: np.ndarray, lookahead: float) -> None:
    """The decomposition table (module docstring)."""
    cfg = separator.config
    audio = torch.from_numpy(mix_np)[None]
    T = audio.shape[-1]
    ref = separator(audio)[0].numpy()
    mix = separator.stft(audio)[0].transpose(-1, -2)  # (C, N, F)
    X = magnitude(separator.stft(audio), mono=cfg.nb_channels == 1)
    N = mix.shape[1]
    a = round(lookahead * cfg.sample_rate / cfg.n_hop)
    w = separator.wiener.wiener_win_len or N
    V_off = run_model(separator, X, None)
    phase = mix / mix.abs().clamp_min(1e-30)
    ref0 = to_audio(separator, V_off * phase, T)
    targets = separator.targets
    print(f"lookahead {a} frames")
    print(f"| design | row | {' | '.join(targets)} | nominal cost |")
    print("|---|---|" + "---:|" * (len(targets) + 1))

    def row(name: str, what: str, Y: Tensor, truth: np.ndarray, cost: str) -> None:
        est = to_audio(separator, Y, T)
        cells = " | ".join(f"{sdr(r, e):.1f}" for r, e in zip(truth, est, strict=True))
        print(f"| {name} | {what} | {cells} | {cost} |", flush=True)

    for what, groups in [
        ("wiener=window P3/B1", groups_window(N, 3 * a, a, a)),
        ("wiener=grid B1", groups_grid(N, w, a, a)),
        ("wiener=grid B0.5", groups_grid(N, w, a // 2, a)),
    ]:
        row("offline model", what, wiener_grid(V_off, mix, separator, groups), ref, "1")
    designs = [
        ("window P1/B0.5", model_window(a, a // 2, a), groups_window(N, a, a // 2, a), a // 2, 5),
        ("window P3/B1", model_window(3 * a, a, a), groups_window(N, 3 * a, a, a), a, 5),
        ("carried B1", model_carried(a, a), groups_window(N, 3 * a, a, a), a, 2),
        ("carried B0.5", model_carried(a // 2, a), groups_window(N, 3 * a, a // 2, a), a // 2, 3),
    ]
    for name, design, gwin, b, cost in designs:
        V = run_model(separator, X, design)
        mags = [
            float(10 * torch.log10(r.square().sum() / (r - e).square().sum()))
            for r, e in zip(V_off, V, strict=True)
        ]
        print(f"| {name} | model (magnitudes) | {' | '.join(f'{m:.1f}' for m in mags)} | {cost} |")
        row(name, "niter0 vs offline niter0", V * phase, ref0, str(cost))
        row(
            name,
            "wiener=offline grid",
            wiener_grid(V, mix, separator, groups_offline(N, w)),
            ref,
            str(cost),
        )
        row(name, "wiener=window", wiener_grid(V, mix, separator, gwin), ref, str(cost))
        row(
            name,
            "wiener=grid",
            wiener_grid(V, mix, separator, groups_grid(N, w, b, a)),
            ref,
            str(cost),
        )


def streams(separator: Separator, mix: np.ndarray, old: bool) -> None:
    """The stream table (module docstring)."""
    seconds = mix.shape[1] / separator.sample_rate
    t = time.perf_counter()
    ref = separator(torch.from_numpy(mix)[None])[0].numpy()
    offline = (time.perf_counter() - t) / seconds
    print(f"offline: {offline:.3f} s of compute per s of audio ({seconds:.0f} s)")
    targets = separator.targets
    print(f"| engine | lookahead (s) | chunk (s) | latency (ms) | {' | '.join(targets)} "
          "| compute (s per s) | × offline |")  # fmt: skip
    print("|---|---:|---:|---:|" + "---:|" * (len(targets) + 2))
    runs: list[tuple[str, float, float, float | None]] = [
        ("carried", la, 1.0, None) for la in (0.5, 1.0, 2.0)
    ]
    runs.append(("carried", 1.0, 0.5, None))
    if old:
        runs.append(("windowed, context 3 s", 1.0, 1.0, 3.0))
    for name, lookahead, chunk, context in runs:
        stream = StreamSeparator(separator, lookahead=lookahead, chunk=chunk, context=context)
        t = time.perf_counter()
        out = stream_all(stream, mix, 4096)
        cost = (time.perf_counter() - t) / seconds
        cells = " | ".join(f"{sdr(r, o):.1f}" for r, o in zip(ref, out, strict=True))
        print(f"| {name} | {lookahead} | {chunk} | {stream.latency_ms:.0f} | {cells} "
              f"| {cost:.3f} | {cost / offline:.1f} |", flush=True)  # fmt: skip
    print("(SDR of the stream's output against the offline separation of the same audio)")


def umxhq_size_bidirectional() -> Separator:
    """umxhq's architecture (hidden 512, 3 layers, n_fft 4096, 4 targets), random weights."""
    cfg = ModelConfig(
        targets=("vocals", "drums", "bass", "other"), sample_rate=44100, n_fft=4096,
        n_hop=1024, nb_channels=2, hidden_size=512, nb_layers=3, unidirectional=False,
        max_bin=1487,
    )  # fmt: skip
    torch.manual_seed(0)
    return Separator(UMX.from_config(cfg), cfg, WienerSettings(niter=1)).freeze()


def main() -> None:
    torch.set_num_threads(1)
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--root", type=Path, required=True)
    p.add_argument("--clips", type=int, default=14)
    p.add_argument("--model", default="umx-preview")
    p.add_argument("--lookahead", type=float, default=1.0, help="of the decomposition")
    p.add_argument("--decompose", action="store_true")
    p.add_argument("--old", action="store_true", help="also the windowed engine")
    p.add_argument("--umxhq-size", action="store_true", help="a random umxhq-size model")
    args = p.parse_args()
    clips = validation_clips(args.root)[: args.clips]
    mix = np.concatenate([stems[0] for _, stems in clips], 1)
    if args.umxhq_size:
        separator, name = umxhq_size_bidirectional(), "random umxhq-size bidirectional UMX"
    else:
        separator = load_separator(args.model, device="cpu", progress=False).freeze()
        name = args.model
    print(f"{name}, {len(clips)} validation clips end to end, one thread")
    with torch.inference_mode():
        if args.decompose:
            decompose(separator, mix, args.lookahead)
        else:
            streams(separator, mix, args.old)


if __name__ == "__main__":
    main()
