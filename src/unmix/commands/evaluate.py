"""``unmix evaluate``: BSSEval v4 scores (equal to museval 0.4.1) of a folder of estimates,
or of a model's separations, with museval's per-track JSON, tables and box plots."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import evaluate as ev
from ..errors import UnmixError
from ..hub.datasets import PREVIEW, fetch_dataset
from ..hub.registry import DEFAULT_MODEL
from ..tracks import Track, find_tracks
from .common import (
    add_device_option,
    add_ensemble_options,
    add_precision_option,
    add_wiener_options,
)

EPILOG = f"""\
inputs:
  ROOT      MUSDB18 (ROOT/test/*.stem.mp4), MUSDB18-HQ (ROOT/test/<track>/vocals.wav ...)
            or plain folders (ROOT/<track>/<source>.<ext>); download MUSDB18 from
            https://zenodo.org/records/1117372 (MUSDB18-HQ: record 3338373) and unzip it.
            Without --root: the MUSDB18 7-s previews ('unmix download musdb18-preview')
  ESTIMATES ESTIMATES/<track>/<target>.wav, as 'unmix separate --out-dir ESTIMATES' writes
            (museval's ESTIMATES/<subset>/<track>/ works too)

outputs (in --out-dir):
  <subset>/<track>.json  museval's per-track JSON (museval.MethodStore.add_eval_dir reads it)
  scores.csv, scores.md  {", ".join(ev.TABLE_METRICS)}: median over frames, median over tracks;
                         a 'mean' row; uSDR = global SDR, mean over tracks
  tracks.csv             per-track scores (median over frames) and uSDR
  boxplot_<target>.png   distribution over tracks (needs matplotlib: unmix[plot])

examples:
  unmix evaluate --model {DEFAULT_MODEL} --root ../shared/data/musdb18-preview --metrics sdr
  unmix separate musdb18/test --out-dir est && unmix evaluate est --root musdb18
  unmix evaluate --model umx --root musdb18 --subset test --wiener-win-len 0
      (all four targets jointly, niter 1, Wiener over whole segments: the setup closest
       to the published Open-Unmix scores; see docs/evaluation.md)
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score separations with BSSEval v4 (museval's numbers, much faster)",
        description="Score estimates against a dataset's references with BSSEval v4 (SDR, SIR, "
        "ISR, SAR per 1-s window, equal to museval 0.4.1), or separate with --model and score "
        "in one go.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "estimates", nargs="?", type=Path, metavar="ESTIMATES", help="folder of estimates"
    )
    d = p.add_argument_group("dataset")
    d.add_argument(
        "--root",
        type=Path,
        default=None,
        help="dataset folder (see below); default: the MUSDB18 7-s previews, downloaded once "
        "into the cache (147 MB; test subset: 50 clips)",
    )
    d.add_argument(
        "--subset",
        choices=["train", "test"],
        default=None,
        help="default: test if ROOT/test exists, else train",
    )
    d.add_argument(
        "--split", choices=["train", "valid"], default=None, help="part of the train subset"
    )
    d.add_argument("--tracks", nargs="+", metavar="NAME", help="only these tracks")
    d.add_argument("--targets", nargs="+", metavar="NAME", help="score only these targets")
    d.add_argument(
        "--allow-missing",
        action="store_true",
        help="score a track without the targets it has no estimate for (default: refuse, "
        "since that changes the mean row)",
    )
    s = p.add_argument_group("scoring")
    s.add_argument(
        "--metrics",
        choices=ev.MODES,
        default="bsseval",
        help="bsseval: SDR, SIR, ISR, SAR (default); sdr: SDR only, milliseconds per track",
    )
    s.add_argument("--window", type=float, default=1.0, metavar="SEC", help="default: 1")
    s.add_argument("--hop", type=float, default=1.0, metavar="SEC", help="default: 1")
    s.add_argument(
        "--regularization",
        type=float,
        default=0.0,
        metavar="R",
        help="opt-in better-conditioned ISR/SIR/SAR (e.g. 3e-5); default 0 = museval",
    )
    s.add_argument(
        "--frames-agg", choices=ev.AGGREGATIONS, default="median", help="default: median"
    )
    s.add_argument(
        "--tracks-agg", choices=ev.AGGREGATIONS, default="median", help="default: median"
    )
    o = p.add_argument_group("output")
    o.add_argument(
        "--out-dir", type=Path, default=Path("eval"), metavar="DIR", help="default: ./eval"
    )
    o.add_argument("--no-plot", action="store_true", help="skip the box plots")
    m = p.add_argument_group("separation (with --model)")
    m.add_argument(
        "--model", default=None, help="registry name or model folder; a+b averages an ensemble"
    )
    m.add_argument("--save-estimates", type=Path, metavar="DIR", help="also write the stems")
    add_wiener_options(m)
    add_ensemble_options(m)
    add_device_option(m)
    add_precision_option(m)
    p.set_defaults(run=run)


def _subset(root: Path, subset: str | None) -> str | None:
    if subset is not None:
        return subset
    for name in ("test", "train"):
        if (root / name).is_dir():
            return name
    return None


def _check_args(args: argparse.Namespace) -> ev.EvalSettings:
    """Refuse bad arguments before any work; returns the scoring settings."""
    if (args.estimates is None) == (args.model is None):
        raise UnmixError("give either a folder of estimates or --model NAME|DIR (not both)")
    settings = ev.EvalSettings(
        args.metrics,
        args.window,
        args.hop,
        args.regularization,
        tuple(args.targets) if args.targets else None,
        args.allow_missing,
    )
    if args.estimates is not None and not args.estimates.is_dir():
        raise UnmixError(f"estimates folder {args.estimates} does not exist")
    ev.check_out_dir(args.out_dir)
    if args.save_estimates is not None:
        ev.check_out_dir(args.save_estimates, "--save-estimates")
    return settings


def _check_missing(args: argparse.Namespace, tracks: list[Track]) -> str | None:
    """Refuse estimates that lack a target for some track (unless --allow-missing); returns
    the line naming them, or None."""
    missing = ev.missing_estimates(tracks, args.estimates, args.targets)
    if not missing:
        return None
    line = ev.describe_missing(missing)
    if not args.allow_missing:
        raise UnmixError(
            f"missing estimates ({line}): that would change the mean row; add the files, or "
            "pass --allow-missing to score the tracks without them"
        )
    print(f"unmix: note: scoring without the missing estimates ({line})", file=sys.stderr)
    return f"Missing estimates (scored without them): {line}"


def _source(
    args: argparse.Namespace, tracks: list[Track]
) -> tuple[ev.EstimateSource, str, list[Track]]:
    """Where estimates come from, a line describing it, and the tracks to score."""
    if args.estimates is not None:
        have = [t for t in tracks if ev.estimates_folder(t, args.estimates) is not None]
        if not have:
            raise UnmixError(
                f"no estimates found in {args.estimates} for the {len(tracks)} track(s) under "
                f"{args.root}: expected {args.estimates}/<track name>/<target>.wav"
            )
        if len(have) < len(tracks):
            print(
                f"unmix: {len(tracks) - len(have)} of {len(tracks)} tracks have no estimates "
                "and are skipped",
                file=sys.stderr,
            )
        return ev.folder_estimates(args.estimates), f"Estimates: {args.estimates}", have
    from .common import separator_from_args

    separator = separator_from_args(args)
    device = next((p.device.type for p in separator.parameters()), "cpu")  # none: an .onnx graph
    line = (
        f"Separation: model {args.model}, targets {', '.join(separator.output_names)}, niter "
        f"{args.niter}, wiener_win_len {args.wiener_win_len or 'whole segment'}, softmask "
        f"{'on' if args.softmask else 'off'}, residual {'on' if args.residual else 'off'}, "
        f"device {device}"
        + (f", shifts {args.shifts}" if args.shifts > 1 else "")
        + (f", precision {args.precision}" if args.precision != "fp32" else "")
        + (f", ensemble weights {' '.join(args.ensemble_weights)}" if args.ensemble_weights else "")
    )
    return ev.model_estimates(separator, args.save_estimates), line, tracks


def _plots(
    args: argparse.Namespace, scores: list[ev.TrackScores], metrics: tuple[str, ...]
) -> list[Path]:
    """The box plots, or none (with a one-line note when matplotlib is missing)."""
    if args.no_plot:
        return []
    if not ev.matplotlib_available():
        print(
            "unmix: note: no box plots: matplotlib is not installed (pip install "
            "'unmix[plot]'; --no-plot skips them)",
            file=sys.stderr,
        )
        return []
    title = str(args.model or args.estimates.name)
    return ev.boxplots(scores, args.out_dir, args.frames_agg, metrics, title)


def run(args: argparse.Namespace) -> int:
    settings = _check_args(args)
    if args.root is None:  # as the seed's eval.py: the MUSDB18 previews, fetched once
        args.root = fetch_dataset(PREVIEW, progress=not getattr(args, "quiet", False))
    subset = _subset(args.root, args.subset)
    tracks = find_tracks(args.root, subset, args.split, args.tracks)
    source, origin, tracks = _source(args, tracks)
    missing = _check_missing(args, tracks) if args.estimates is not None else None
    scores, failed = ev.evaluate_tracks(
        tracks, source, args.out_dir, settings, print, load_mixture=args.model is not None
    )
    if not scores:
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        raise UnmixError(f"no track could be scored: {failed[0]}{more}")
    metrics = ev.TABLE_METRICS if args.metrics == "bsseval" else ("SDR",)
    summary = ev.aggregate(scores, args.frames_agg, args.tracks_agg, metrics)
    header = [
        *ev.describe_scoring(settings, args.frames_agg, args.tracks_agg),
        f"Dataset: {ev.describe_dataset(tracks, args.root, args.split)}; scored {len(scores)}",
        origin,
        *([missing] if missing else []),
    ]
    note = ev.rounding_noise_note(tracks, settings)
    print()
    print("\n".join(header))
    print(ev.summary_text(summary))
    if note:
        print(note)
        header.append(note)
    ev.write_files(
        {
            args.out_dir / "scores.csv": ev.summary_csv(summary),
            args.out_dir / "scores.md": ev.summary_markdown(summary, header),
            args.out_dir / "tracks.csv": ev.track_csv(scores, args.frames_agg),
        }
    )
    written = _plots(args, scores, metrics)
    print(
        f"\nwrote {args.out_dir}/: {len(scores)} JSON, scores.csv, scores.md, tracks.csv"
        + (f", {len(written)} box plots" if written else "")
    )
    if failed:
        print(f"unmix: error: {len(failed)} track(s) failed:", file=sys.stderr)
        for line in failed:
            print(f"  {line}", file=sys.stderr)
        return 1
    return 0
