"""Run an exported separation graph with onnxruntime (numpy only: no PyTorch imported).

``onnxruntime`` is an optional extra (``pip install 'unmix[onnx]'``) and is imported when a
graph is opened.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AudioError, UnmixError
from .metadata import INPUT_NAME, OUTPUT_NAME, GraphInfo

#: largest graph file read (the protobuf limit; umxl is about 0.5 GB)
MAX_GRAPH_BYTES = 2 << 30


def import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise UnmixError(
            "running an .onnx model needs onnxruntime: pip install 'unmix[onnx]'"
        ) from None
    return onnxruntime


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _check_self_contained(data: bytes, what: str) -> None:
    """Refuse a graph whose tensors live in other files (ONNX external data).

    Raises:
        UnmixError: an unreadable protobuf, or a tensor stored outside the file.
    """
    try:
        import onnx
    except ImportError:
        raise UnmixError("reading an .onnx model needs onnx: pip install 'unmix[onnx]'") from None
    try:
        model = onnx.load_from_string(data)
    except Exception as exc:
        raise UnmixError(
            f"{what} is not a readable ONNX model ({_first_line(exc)}); export one with "
            "'unmix export'"
        ) from None
    graphs = [model.graph]
    while graphs:
        graph = graphs.pop()
        tensors = list(graph.initializer)
        for node in graph.node:
            for attr in node.attribute:
                tensors += [attr.t, *attr.tensors]
                graphs += [attr.g, *attr.graphs] if attr.HasField("g") else list(attr.graphs)
        if any(t.data_location == onnx.TensorProto.EXTERNAL for t in tensors):
            raise UnmixError(
                f"{what} keeps tensors in other files (ONNX external data); unmix reads only "
                "self-contained graphs: re-export it with 'unmix export'"
            )


class OnnxGraph:
    """An exported graph, checked and ready to run.

    Args:
        path: the ``.onnx`` file written by ``unmix export``.
        threads: intra-op threads (0: onnxruntime's choice).

    Raises:
        UnmixError: a missing, huge, corrupt or foreign file, missing metadata, or inputs and
            outputs that are not ``mixture (C, T) → stems (J, C, T)``.
    """

    def __init__(self, path: str | Path, threads: int = 0) -> None:
        path = Path(path)
        what = str(path)
        if not path.is_file():
            raise UnmixError(f"{what}: no such file")
        size = path.stat().st_size
        if size > MAX_GRAPH_BYTES:
            raise UnmixError(f"{what} is {size / 2**30:.1f} GiB; an unmix graph is under 2 GiB")
        ort = import_onnxruntime()
        data = path.read_bytes()
        _check_self_contained(data, what)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:  # from bytes: the runtime never opens another file
            session = ort.InferenceSession(
                data, sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own classes for every failure
            raise UnmixError(
                f"{what} is not a readable ONNX model ({_first_line(exc)}); export one with "
                "'unmix export'"
            ) from None
        self.info = GraphInfo.from_metadata(session.get_modelmeta().custom_metadata_map, what)
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if [i.name for i in inputs] != [INPUT_NAME] or [o.name for o in outputs] != [OUTPUT_NAME]:
            raise UnmixError(
                f"{what}: expected one input {INPUT_NAME!r} and one output {OUTPUT_NAME!r}, got "
                f"{[i.name for i in inputs]} → {[o.name for o in outputs]}; re-export it"
            )
        self.session = session
        self.path = path

    @property
    def output_names(self) -> tuple[str, ...]:
        """Names of the stems, in output order."""
        return self.info.outputs

    def run(self, mixture: np.ndarray) -> np.ndarray:
        """Separate ``(nb_channels, nb_samples)`` float32 audio at the graph's rate.

        Audio shorter than :attr:`GraphInfo.min_samples` is zero-padded and cut back.

        Returns:
            stems ``(nb_outputs, nb_channels, nb_samples)`` float32.

        Raises:
            AudioError: a channel count other than the graph's, or no samples.
            UnmixError: the graph gave NaN or infinite values.
        """
        x = np.ascontiguousarray(mixture, dtype=np.float32)
        channels = self.info.nb_channels
        if x.ndim != 2 or x.shape[0] != channels:
            raise AudioError(
                f"{self.path.name} was exported for {channels}-channel audio, got shape "
                f"{x.shape}; export it with --channels {x.shape[0] if x.ndim == 2 else 1} "
                "or convert the audio"
            )
        length = x.shape[1]
        if length == 0:
            raise AudioError("audio is empty (0 samples)")
        if length < self.info.min_samples:
            x = np.pad(x, ((0, 0), (0, self.info.min_samples - length)))
        stems: np.ndarray = self.session.run([OUTPUT_NAME], {INPUT_NAME: x})[0][..., :length]
        if not np.isfinite(stems).all():
            raise UnmixError(f"{self.path.name} gave NaN or infinite stems; nothing was written")
        return stems
