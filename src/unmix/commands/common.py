"""Options and helpers shared by the commands that separate (``separate``, ``evaluate``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..choices import (
    DEFAULT_PRECISION,
    DEVICE_HELP,
    JOIN,
    PRECISIONS,
    ensemble_parts,
    parse_device,
    parse_weights,
)
from ..errors import UnmixError
from ..export.graph_separator import GraphSeparator, load_graph_separator
from ..wiener_settings import WienerSettings

if TYPE_CHECKING:
    from ..separator import Separator


def add_wiener_options(group: argparse._ArgumentGroup) -> None:
    """``--residual --niter --softmask --wiener-win-len``, identical in every command."""
    group.add_argument(
        "--residual",
        action="store_true",
        help="also output 'residual': the input minus the chosen targets",
    )
    group.add_argument(
        "--niter",
        type=int,
        default=1,
        metavar="N",
        help="Wiener EM iterations; 0 keeps the raw model estimates (default: 1)",
    )
    group.add_argument(
        "--softmask",
        action="store_true",
        help="start the Wiener filter from ratio masks instead of magnitudes",
    )
    group.add_argument(
        "--wiener-win-len",
        type=int,
        default=300,
        metavar="N",
        help="STFT frames per Wiener window; 0: one window per segment (default: 300)",
    )


def add_ensemble_options(group: argparse._ArgumentGroup) -> None:
    """``--shifts N`` and ``--ensemble-weights``, identical in ``separate`` and ``evaluate``."""
    group.add_argument(
        "--shifts",
        type=int,
        default=1,
        metavar="N",
        help="separate N copies shifted by fractions of the STFT hop and average them: "
        "slower by N, usually a little better (default: 1, no shifts)",
    )
    group.add_argument(
        "--ensemble-weights",
        nargs="+",
        default=None,
        metavar="W",
        help="weights of the members of --model a+b: 2,1 for every target, or per target "
        "vocals=2,1 bass=1,3 (others equal; default: all equal)",
    )


def device_argument(text: str) -> str:
    """``argparse`` type of ``--device``: ``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``."""
    try:
        return parse_device(text)
    except UnmixError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_device_option(group: argparse._ArgumentGroup) -> None:
    """``-d/--device auto|cpu|cuda|cuda:N|mps``."""
    group.add_argument(
        "-d",
        "--device",
        default="auto",
        type=device_argument,
        metavar="DEVICE",
        help=f"where the model runs: {DEVICE_HELP} (default: auto = CUDA, else MPS, else CPU)",
    )


def add_precision_option(group: argparse._ArgumentGroup) -> None:
    """``--precision fp32|bf16|fp16`` (:mod:`unmix.precision`)."""
    group.add_argument(
        "--precision",
        default=DEFAULT_PRECISION,
        choices=PRECISIONS,
        help="what the networks compute in: bf16 is about twice as fast on CPUs with "
        "AVX-512 BF16 or AMX and on GPUs, fp16 on CUDA GPUs; the Wiener filter stays "
        f"float32 (default: {DEFAULT_PRECISION}; docs/speed.md)",
    )


def wiener_from_args(args: argparse.Namespace) -> WienerSettings:
    """The one :class:`WienerSettings` of the options above (``--wiener-win-len 0``: all)."""
    return WienerSettings(
        niter=args.niter,
        softmask=args.softmask,
        residual=args.residual,
        wiener_win_len=args.wiener_win_len or None,
    )


def is_one_graph(model: str) -> bool:
    """Whether ``model`` names one exported graph (``FILE.onnx``, not in an ensemble)."""
    parts = ensemble_parts(model)
    return len(parts) == 1 and Path(parts[0]).suffix.lower() == ".onnx"


def graph_from_args(args: argparse.Namespace) -> GraphSeparator:
    """Open the exported graph ``args.model`` (:func:`is_one_graph`) without PyTorch, with
    the checks and errors of :func:`separator_from_args`; ``args.threads`` (Default: as
    PyTorch would choose) are the graph's."""
    weights = getattr(args, "ensemble_weights", None)
    return load_graph_separator(
        args.model, args.targets, wiener_from_args(args), args.device,
        getattr(args, "precision", DEFAULT_PRECISION), getattr(args, "threads", None),
        shifts=getattr(args, "shifts", 1), weights=parse_weights(weights) if weights else None,
    )  # fmt: skip


def load_separator(model: str, *args: Any, **options: Any) -> Separator:
    """:func:`unmix.hub.loading.load_separator`, imported when called: it needs PyTorch,
    which an exported graph does not (:func:`graph_from_args`)."""
    from ..hub.loading import load_separator as load

    return load(model, *args, **options)


def separator_from_args(args: argparse.Namespace) -> Separator:
    """Load ``args.model`` with the options above (and ``args.targets``, ``args.device``)."""
    weights = getattr(args, "ensemble_weights", None)
    return load_separator(
        args.model, targets=args.targets, wiener=wiener_from_args(args), device=args.device,
        shifts=getattr(args, "shifts", 1), weights=parse_weights(weights) if weights else None,
        precision=getattr(args, "precision", DEFAULT_PRECISION),
    )  # fmt: skip


def model_label(model: str) -> str:
    """The ``{model}`` of output paths: a registry name as is, a model folder's or file's
    name (``models/my-umx/`` → ``my-umx``, ``net.onnx`` → ``net``); an ensemble's members'
    labels joined by ``+``."""
    parts = ensemble_parts(model)
    if len(parts) > 1:
        return JOIN.join(model_label(p) for p in parts)
    path = Path(model)
    if path.exists() or len(path.parts) > 1:
        return (path.stem if path.suffix and not path.is_dir() else path.name) or "model"
    return model


def model_source(model: str) -> str:
    """``model`` as the record of outputs names it: a registry name as is, a path resolved
    (each member's, for an ensemble)."""
    parts = ensemble_parts(model)
    if len(parts) > 1:
        return JOIN.join(model_source(p) for p in parts)
    path = Path(model)
    return str(path.resolve()) if path.exists() else model
