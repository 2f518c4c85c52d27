"""The pictures in the README and docs/, drawn from measured numbers (matplotlib, PNG).

    python benchmarks/charts.py recorded                 # separation + BSSEval speed charts
    python benchmarks/charts.py evaluation EVAL [REG]    # box plots from `unmix evaluate` folders
    python benchmarks/charts.py training RUN [--name N]  # curves from an `unmix train` folder

``recorded`` draws the numbers that docs/benchmarks.md records (the tables are copied
below with their dates; re-measure with bench_separate.py / bench_metrics.py and update
both). ``evaluation`` reads the ``tracks.csv`` of ``unmix evaluate --out-dir EVAL``
(museval's default) and, if given, of a run with ``--regularization`` (its ISR/SIR/SAR
are the ones drawn then). ``training`` reads the ``<target>.history.json`` files that
``unmix train`` writes beside the model. Everything goes to docs/img/ (``--out``).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

OUT = Path(__file__).resolve().parents[1] / "docs" / "img"
UNMIX, REFERENCE = "#1f77b4", "#999999"
TARGETS = ("vocals", "drums", "bass", "other")

#: docs/benchmarks.md, "Separation: speed and memory" (2026-12-06, AMD EPYC, 2 cores,
#: torch 2.13.0 CPU, umxhq-sized models, file to files): minutes, RTF, peak GiB
SEPARATION = {
    "minutes": [0.5, 3, 10, 60],
    "unmix_rtf": [26.4, 22.4, 20.8, 21.2],
    "unmix_gib": [0.79, 1.26, 1.28, 1.26],
    "openunmix_rtf": [8.9, 7.9, 7.2, None],
    "openunmix_gib": [1.25, 4.99, 15.09, None],
}

#: docs/benchmarks.md, "Metrics: BSSEval v4, unmix vs museval" (2026-12-02, same VM):
#: seconds of audio, median seconds per call, peak MB (4 stereo sources, 1-s windows)
BSSEVAL = {
    "labels": ["30 s\n(positive definite)", "180 s", "30 s\n(indefinite)"],
    "museval_s": [23.38, 81.52, 22.93],
    "unmix_s": [0.93, 2.50, 0.95],
    "museval_mb": [1259, 3389, 1259],
    "unmix_mb": [440, 884, 450],
}


def _save(fig: plt.Figure, out: Path, name: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    fig.savefig(path, dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    print(f"wrote {path}")
    return path


def separation_chart(out: Path) -> Path:
    """Real-time factor and peak memory against duration, unmix vs openunmix 1.3.0."""
    s = SEPARATION
    fig, (speed, memory) = plt.subplots(1, 2, figsize=(9, 3.6), layout="constrained")
    ref_minutes = [m for m, v in zip(s["minutes"], s["openunmix_rtf"], strict=True) if v]
    for ax, key, ylabel in ((speed, "rtf", "real-time factor (higher is faster)"),
                            (memory, "gib", "peak memory (GiB)")):  # fmt: skip
        ax.plot(s["minutes"], s[f"unmix_{key}"], "o-", color=UNMIX, label="unmix")
        ref = [v for v in s[f"openunmix_{key}"] if v is not None]
        ax.plot(ref_minutes, ref, "s--", color=REFERENCE, label="openunmix 1.3.0")
        ax.set_xscale("log")
        ax.set_xticks(s["minutes"], ["30 s", "3 min", "10 min", "60 min"])
        ax.minorticks_off()
        ax.set_xlabel("audio duration")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
    memory.text(13, 6, "openunmix at 60 min:\nnot run (its memory\ngrows ~25 MB/s)",
                fontsize=8, color="#555555")  # fmt: skip
    speed.legend(loc="lower left")
    fig.suptitle("Separating a file into four stems (CPU, 2 threads; docs/benchmarks.md)")
    return _save(fig, out, "separation-speed-memory.png")


def bsseval_chart(out: Path) -> Path:
    """Seconds and peak memory per BSSEval v4 call, unmix vs museval 0.4.1."""
    b = BSSEVAL
    x = range(len(b["labels"]))
    fig, (time_ax, mem_ax) = plt.subplots(1, 2, figsize=(9, 3.6), layout="constrained")
    for ax, key, ylabel in ((time_ax, "s", "seconds per track (lower is better)"),
                            (mem_ax, "mb", "peak memory (MB)")):  # fmt: skip
        ax.bar([i - 0.2 for i in x], b[f"museval_{key}"], 0.4, color=REFERENCE, label="museval")
        ax.bar([i + 0.2 for i in x], b[f"unmix_{key}"], 0.4, color=UNMIX, label="unmix")
        ax.set_xticks(list(x), b["labels"], fontsize=8)
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", alpha=0.3)
        if key == "s":
            for i, (m, u) in enumerate(zip(b["museval_s"], b["unmix_s"], strict=True)):
                ax.text(i, m + 2, f"{m / u:.0f}× faster", ha="center", fontsize=8)
            ax.set_ylim(top=max(b["museval_s"]) * 1.15)
    time_ax.legend(loc="upper left")
    fig.suptitle("BSSEval v4, 4 stereo sources, all four metrics (docs/benchmarks.md)")
    return _save(fig, out, "bsseval-speed.png")


def read_tracks(folder: Path) -> dict[str, dict[str, list[float]]]:
    """``tracks.csv`` of an ``unmix evaluate`` folder → metric → target → per-track values."""
    values: dict[str, dict[str, list[float]]] = {m: {} for m in ("SDR", "SIR", "ISR", "SAR")}
    with open(folder / "tracks.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            for metric in ("SDR", "SIR", "ISR", "SAR"):
                value = float(row[metric])
                if value == value:  # NaN: a silent reference, left out as museval does
                    values[metric].setdefault(row["target"], []).append(value)
    return values


def _regularization(folder: Path) -> str:
    """The ``--regularization`` of an ``unmix evaluate`` folder, as its scores.md states it."""
    try:
        found = re.search(r"regularization ([0-9.e+-]+)", (folder / "scores.md").read_text())
    except OSError:
        found = None
    return found.group(1) if found else "(value not recorded)"


def evaluation_chart(default: Path, regularized: Path | None, out: Path, name: str) -> Path:
    """Per-track box plots: SDR (museval's default) and ISR/SIR/SAR (regularized if given)."""
    plain = read_tracks(default)
    other = read_tracks(regularized) if regularized else plain
    metrics = [("SDR", plain)] + [(m, other) for m in ("SIR", "ISR", "SAR")]
    fig, axes = plt.subplots(1, 4, figsize=(11, 3.4), sharey=True, layout="constrained")
    for ax, (metric, table) in zip(axes, metrics, strict=True):
        ax.set_title(metric if metric == "SDR" or not regularized else f"{metric} (regularized)",
                     fontsize=10)  # fmt: skip
        ax.grid(axis="y", alpha=0.3)
        targets = [t for t in TARGETS if table[metric].get(t)]
        if not targets:  # every value NaN (silent references)
            ax.text(0.5, 0.5, "no values", ha="center", transform=ax.transAxes)
            continue
        ax.boxplot([table[metric][t] for t in targets], medianprops={"color": UNMIX}, widths=0.6)
        ax.set_xticks(range(1, len(targets) + 1), targets)
        ax.tick_params(axis="x", labelsize=8)
    axes[0].set_ylabel("dB (per track: median\nover 1-s windows)")
    tracks = max((len(v) for v in plain["SDR"].values()), default=0)
    note = (
        f"; ISR/SIR/SAR with --regularization {_regularization(regularized)}" if regularized else ""
    )
    fig.suptitle(f"{name}: BSSEval v4 on {tracks} tracks{note}", fontsize=11)
    return _save(fig, out, f"{name}-boxplot.png")


def training_chart(run: Path, out: Path, name: str) -> Path:
    """Training and validation loss per epoch of every target of an ``unmix train`` run."""
    histories = {p.name.removesuffix(".history.json"): json.loads(p.read_text())
                 for p in sorted(run.glob("*.history.json"))}  # fmt: skip
    if not histories:
        raise SystemExit(f"no <target>.history.json in {run}: not an unmix train folder")
    fig, axes = plt.subplots(
        1, len(histories), figsize=(2.8 * len(histories), 3), sharey=True, layout="constrained"
    )
    for ax, (target, h) in zip(list(getattr(axes, "flat", [axes])), histories.items(), strict=True):
        epochs = range(1, len(h["train_loss"]) + 1)
        ax.plot(epochs, h["train_loss"], ".-", color=UNMIX, label="train")
        ax.plot(epochs, h["valid_loss"], ".-", color="#d62728", label="validation")
        ax.axvline(h["best_epoch"], color="#555555", lw=0.8, ls=":", label="best epoch")
        ax.set_title(target, fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    first = next(iter(getattr(axes, "flat", [axes])))
    first.set_ylabel("loss (MSE of magnitudes)")
    first.legend(fontsize=8)
    fig.suptitle(f"{name}: training curves", fontsize=11)
    return _save(fig, out, f"{name}-training.png")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT, help="default: docs/img")
    sub = parser.add_subparsers(dest="chart", required=True)
    sub.add_parser("recorded", help="separation and BSSEval speed from docs/benchmarks.md")
    ev = sub.add_parser("evaluation", help="box plots from unmix evaluate folders")
    ev.add_argument("default", type=Path, help="--out-dir of a run with museval's default")
    ev.add_argument("regularized", type=Path, nargs="?", help="--out-dir with --regularization")
    ev.add_argument("--name", default="umx-preview")
    tr = sub.add_parser("training", help="curves from an unmix train folder")
    tr.add_argument("run", type=Path)
    tr.add_argument("--name", default="model")
    args = parser.parse_args(argv)
    if args.chart == "recorded":
        separation_chart(args.out)
        bsseval_chart(args.out)
    elif args.chart == "evaluation":
        evaluation_chart(args.default, args.regularized, args.out, args.name)
    else:
        training_chart(args.run, args.out, args.name)


if __name__ == "__main__":
    main()
