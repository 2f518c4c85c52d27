"""``unmix export --model M --format onnx --out FILE.onnx``: one graph, waveform in, stems out."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UnmixError
from ..export.driver import LAYOUTS, QUANTIZATIONS, export_onnx
from ..export.step_export import export_step_onnx
from ..hub.registry import DEFAULT_MODEL
from .common import add_wiener_options, separator_from_args


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "export",
        help="export a model as one ONNX graph (waveform in, stems out)",
        description=(
            "Export a model (registry name, folder or file) with its separation settings as one "
            "ONNX graph: input 'mixture' (nb_channels, nb_samples) float32 at the model rate, "
            "output 'stems' (nb_outputs, nb_channels, nb_samples); STFT, model, Wiener EM and "
            "ISTFT inside. Target names, rate and settings are in its metadata "
            "(docs/export.md). Run it with 'unmix separate --model FILE.onnx'."
        ),
    )
    p.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"model to export (default: {DEFAULT_MODEL})"
    )
    p.add_argument(
        "--format", default="onnx", choices=["onnx"], help="graph format (default: onnx)"
    )
    p.add_argument("--out", type=Path, required=True, metavar="FILE.onnx", help="file to write")
    p.add_argument("--force", action="store_true", help="replace FILE.onnx if it exists")
    p.add_argument(
        "--targets",
        nargs="+",
        metavar="NAME",
        help="targets to output, in this order (default: all)",
    )
    p.add_argument(
        "--channels",
        type=int,
        choices=[1, 2],
        help="channels of the graph's input (default: the model's; mono models may take 2)",
    )
    p.add_argument(
        "--quantize",
        default="none",
        choices=QUANTIZATIONS,
        help="int8: dynamic int8 quantisation of the network's weights (the STFT/ISTFT stay "
        "float32; faster for large models, about 37 dB SDR against float32)",
    )
    p.add_argument(
        "--layout",
        default="chunked",
        choices=LAYOUTS,
        help="chunked: the Wiener filter and ISTFT in ONNX Scan loops over 12-frame chunks "
        "(a third of the memory, faster); whole: plain operators over the whole input, for "
        "runtimes without Scan",
    )
    p.add_argument(
        "--step",
        action="store_true",
        help=(
            "export a causal (unidirectional) model's step graph: one hop of audio and the "
            "state in, stems and state out (docs/export.md)"
        ),
    )
    group = p.add_argument_group("separation settings baked into the graph")
    add_wiener_options(group)
    p.set_defaults(run=run, device="cpu")


def run(args: argparse.Namespace) -> int:
    out: Path = args.out
    if out.suffix != ".onnx":
        raise UnmixError(f"--out must name a .onnx file, got {out}")
    if out.exists() and not args.force:
        raise UnmixError(f"{out} already exists; use --force to replace it")
    if out.exists() and not out.is_file():
        raise UnmixError(f"{out} exists and is not a file; choose another name")
    separator = separator_from_args(args)
    separator.check_single("unmix export")
    if args.step:
        if args.quantize != "none":
            raise UnmixError("--quantize applies to the whole-song graph, not to --step")
        if args.layout != "chunked":
            raise UnmixError("--layout applies to the whole-song graph, not to --step")
        error = export_step_onnx(separator, out, nb_channels=args.channels)
        print(
            f"{args.model} -> {out} (step graph, ONNX opset 17; {separator.config.n_hop} samples "
            f"per call; max difference to the causal engine {error:.2g})"
        )
        return 0
    error = export_onnx(
        separator,
        out,
        nb_channels=args.channels,
        quantize=args.quantize,
        model_name=args.model,
        layout=args.layout,
    )
    names = ", ".join(separator.output_names)
    print(
        f"{args.model} -> {out} (ONNX opset 17; outputs {names}; {separator.sample_rate} Hz; "
        f"max difference to torch on a check signal {error:.2g})"
    )
    return 0
