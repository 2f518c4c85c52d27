"""``unmix separate``: files in, stems out (``OUT/<input name>/<target>.<ext>``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import audio as audio_io
from ..api import separate_array
from ..errors import UnmixError
from ..loading import load_separator
from ..registry import DEFAULT_MODEL


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "separate", help="separate songs into stems", description="Separate audio files into stems."
    )
    p.add_argument("inputs", nargs="+", type=Path, help="audio files")
    p.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"registry name or model folder (default: {DEFAULT_MODEL})",
    )
    p.add_argument("--targets", nargs="+", default=None, help="targets to keep (default: all)")
    p.add_argument(
        "--out-dir",
        type=Path,
        default=Path("separated"),
        help="output folder (default: ./separated)",
    )
    p.add_argument("--format", default="wav", choices=["wav", "flac"], help="output format")
    p.add_argument("--niter", type=int, default=1, help="Wiener EM iterations (default: 1)")
    p.add_argument("--softmask", action="store_true", help="initialise Wiener with ratio masks")
    p.add_argument("--residual", action="store_true", help="also write mixture minus the targets")
    p.add_argument(
        "--wiener-win-len",
        type=int,
        default=300,
        help="frames per Wiener window, 0 for the whole track (default: 300)",
    )
    p.add_argument("--device", default=None, help="cpu, cuda or mps (default: best available)")
    p.add_argument("--force", action="store_true", help="overwrite existing stems")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    sep = load_separator(
        args.model,
        targets=args.targets,
        niter=args.niter,
        softmask=args.softmask,
        residual=args.residual,
        wiener_win_len=args.wiener_win_len or None,
        device=args.device,
    )
    failed = 0
    for path in args.inputs:
        name = path.name.removesuffix(".stem.mp4") if path.name.endswith(".stem.mp4") else path.stem
        folder = args.out_dir / name
        outputs = {t: folder / f"{t}.{args.format}" for t in sep.output_names}
        existing = [p for p in outputs.values() if p.exists()]
        if existing and not args.force:
            print(
                f"unmix: skipping {path}: {folder} already has stems (use --force to overwrite)",
                file=sys.stderr,
            )
            continue
        try:
            mix, rate = audio_io.read(path)
            stems = separate_array(sep, mix, rate)
            for target, stem in stems.items():
                audio_io.write(outputs[target], stem, rate)
        except UnmixError as exc:
            print(f"unmix: error: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(f"{path} -> {folder}/")
    return 1 if failed else 0
