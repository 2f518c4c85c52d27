"""Export a :class:`~unmix.separator.Separator` as one ONNX graph with its metadata.

The graph is traced from :class:`~unmix.export.graph.SeparationGraph` with the TorchScript
exporter at opset 17 (the first opset with ``STFT`` and ``DFT``; onnxruntime ≥ 1.13,
onnxruntime-web and most other runtimes run it), its metadata is added, it is checked
against the torch separator on a short noise signal, optionally quantised, and only then
written (temporary file + rename).
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..errors import UnmixError
from ..fileio import atomic_path
from ..separator import Separator
from .chunked import plan_chunks
from .compose import chunked_graph
from .graph import SeparationGraph
from .metadata import INPUT_NAME, OUTPUT_NAME, SETTING_KEYS, GraphInfo
from .runtime import OnnxGraph, import_onnxruntime
from .tracing import trace

#: largest difference to the torch separator accepted by the check after export
#: (float32; measured differences are about 1e-6 of full scale)
CHECK_TOLERANCE = 1e-3
QUANTIZATIONS = ("none", "int8")
LAYOUTS = ("chunked", "whole")
#: operators whose weights ``--quantize int8`` stores as int8 (the network's matrix products)
QUANTIZED_OPS = ["MatMul", "Gemm", "LSTM"]
#: one int8 scale per output channel of every quantised weight (rather than per tensor)
PER_CHANNEL = True
#: node-name prefixes of the STFT and ISTFT (:class:`SeparationGraph`'s ``stft``/``istft``)
SPECTRAL_SCOPES = ("/stft/", "/istft/")


def graph_info(
    separator: Separator, nb_channels: int, quantization: str = "none", layout: str = "whole"
) -> GraphInfo:
    """The metadata of ``separator``'s graph."""
    settings = {key: getattr(separator.wiener, key) for key in SETTING_KEYS}
    return GraphInfo(
        outputs=separator.output_names,
        sample_rate=separator.sample_rate,
        nb_channels=nb_channels,
        n_fft=separator.config.n_fft,
        n_hop=separator.config.n_hop,
        settings=settings,
        model_config=separator.config.to_dict(),
        version=__version__,
        quantization=quantization,
        layout=layout,
    )


def _trace(graph: SeparationGraph, nb_channels: int, n_fft: int, folder: Path) -> bytes:
    """The ONNX bytes of ``graph`` (dynamic ``nb_samples``), traced in ``folder``."""
    example = torch.zeros(nb_channels, 4 * n_fft)
    example.normal_(generator=torch.Generator().manual_seed(0))
    dynamic = {INPUT_NAME: {1: "nb_samples"}, OUTPUT_NAME: {2: "nb_samples"}}
    return trace(graph, [example], [INPUT_NAME], [OUTPUT_NAME], dynamic, folder / "traced.onnx")


def with_metadata(data: bytes, metadata: dict[str, str]) -> bytes:
    """The ONNX ``data`` with ``metadata`` as its ``metadata_props`` (replacing any) and unmix as producer."""
    import onnx

    model = onnx.load_from_string(data)
    del model.metadata_props[:]
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    model.producer_name = "unmix"
    model.producer_version = __version__
    model.doc_string = "unmix separation graph: mixture (C, T) -> stems (J, C, T); see metadata"
    return bytes(model.SerializeToString())


def _quantize_int8(data: bytes, folder: Path) -> bytes:
    """``data`` with the network's weights dynamically quantised to int8 (DFTs excluded)."""
    import_onnxruntime()
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source, target = folder / "float-part.onnx", folder / "int8-part.onnx"
    source.write_bytes(data)
    # the DFT matrices stay float32: int8 bases would cost far more SDR than the network
    spectral = [
        node.name
        for node in onnx.load_from_string(data).graph.node
        if node.name.startswith(SPECTRAL_SCOPES)
    ]
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)  # the quantiser warns about every non-float tensor
        try:
            quantize_dynamic(
                source,
                target,
                weight_type=QuantType.QInt8,
                op_types_to_quantize=QUANTIZED_OPS,
                nodes_to_exclude=spectral,
                per_channel=PER_CHANNEL,
            )
        finally:
            logging.disable(logging.NOTSET)
    return target.read_bytes()


def _check(path: Path, separator: Separator, nb_channels: int, tolerance: float) -> float:
    """Max abs difference of graph and torch separator on 1.5 s of noise (raises if larger)."""
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal((nb_channels, separator.sample_rate * 3 // 2))).astype(
        np.float32
    )
    graph = OnnxGraph(path)
    with torch.inference_mode():
        expected = separator(torch.from_numpy(audio)[None])[0].numpy()
    error = float(np.abs(graph.run(audio) - expected).max())
    if not error <= tolerance:
        raise UnmixError(
            f"the exported graph differs from the torch separator by {error:.3g} (more than "
            f"{tolerance:g}); nothing was written"
        )
    return error


def export_onnx(
    separator: Separator,
    path: str | Path,
    nb_channels: int | None = None,
    quantize: str = "none",
    model_name: str = "",
    layout: str = "chunked",
) -> float:
    """Write ``separator`` as one ONNX graph ``mixture (C, T) → stems (J', C, T)``.

    Args:
        separator: a frozen torch separator (its targets and Wiener settings are baked in).
        path: the ``.onnx`` file to write (replaced atomically; the caller checks overwrites).
        nb_channels: channels of the graph's input (Default: 2 for stereo models, 1 for
            spectral-mono ones).
        quantize: ``"none"`` or ``"int8"`` (dynamic quantisation of the weights).
        model_name: the model's name for the metadata.
        layout: ``"chunked"`` (the Wiener filter and ISTFT in ``Scan`` bodies over runs of
            frames: :mod:`unmix.export.compose`) or ``"whole"`` (one traced graph of
            :class:`SeparationGraph` over whole tensors: the same stems, more memory and
            time; kept for comparison, and used for Wiener windows of fewer frames than
            ``n_fft / n_hop``, which a chunk cannot hold).

    Returns:
        the largest difference to the torch separator on the check signal.

    Raises:
        UnmixError: a part that cannot be exported (named), or a graph that does not
            reproduce the torch separator; nothing is written then.
    """
    if layout not in LAYOUTS:
        raise UnmixError(f"unknown graph layout {layout!r}; choose one of {LAYOUTS}")
    if quantize not in QUANTIZATIONS:
        raise UnmixError(f"unknown quantisation {quantize!r}; choose one of {QUANTIZATIONS}")
    channels = nb_channels or separator.config.nb_channels
    if channels not in (1, 2) or channels < separator.config.nb_channels:
        raise UnmixError(
            f"cannot export a {channels}-channel graph of a {separator.config.nb_channels}-"
            "channel model: a stereo model's graph takes 2 channels (mono audio is duplicated "
            "by the runner), a mono model's 1 or 2"
        )
    separator = separator.cpu().eval()
    config = separator.config
    plan = plan_chunks(separator.wiener, channels, config.n_fft // config.n_hop - 1)
    if plan is None:
        layout = "whole"  # Wiener windows shorter than a chunk's overlap
    info = graph_info(separator, channels, quantize, layout)
    with tempfile.TemporaryDirectory(prefix="unmix-export-") as tmp:
        folder = Path(tmp)
        if layout == "chunked" and plan is not None:
            quantizer = (lambda part: _quantize_int8(part, folder)) if quantize == "int8" else None
            data = chunked_graph(separator, channels, plan, folder, quantizer)
        else:
            graph = SeparationGraph(separator, channels).eval()
            data = _trace(graph, channels, config.n_fft, folder)
            if quantize == "int8":
                data = _quantize_int8(data, folder)
        with atomic_path(Path(path), suffix=".onnx.part") as part:
            part.write_bytes(with_metadata(data, info.to_metadata(model_name)))
            # int8 changes the numbers on purpose: its SDR cost is measured in the benchmark
            return _check(part, separator, channels, CHECK_TOLERANCE if quantize == "none" else 1e9)
