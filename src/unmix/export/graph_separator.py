"""An exported graph behind the engine, with numpy only (PyTorch is not imported).

:class:`GraphSeparator` has what the engine reads of a separator (``config``, ``wiener``,
``targets``, ``output_names``, ``sample_rate``, ``hops``, ``residual``,
``settings_record()``) and separates lists of numpy segments with
:meth:`GraphSeparator.separate_many`; :func:`load_graph_separator` opens one with the checks
and one-line errors of :func:`unmix.export.separator.load_onnx_separator`.
``unmix separate --model FILE.onnx`` runs on it, so that the command never imports PyTorch.
:class:`~unmix.export.separator.OnnxSeparator` (a torch :class:`~unmix.separator.Separator`
for Python users) delegates to one, and the engine finds it there
(:func:`as_graph_separator`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..choices import Weights, ensemble_parts
from ..config import ModelConfig
from ..cpus import current_threads
from ..errors import UnmixError
from ..heap import keep_freed_memory
from ..wiener_settings import WienerSettings
from .runtime import OnnxGraph


class GraphSeparator:
    """Separate numpy audio with an exported graph (CPU, onnxruntime).

    Args:
        graph: an opened :class:`OnnxGraph`.

    Mono audio into a stereo graph is separated as the duplicated signal and the stems are
    downmixed, as the torch separator does; any other channel mismatch raises.
    """

    #: one pass, float32: nothing beyond model, targets and Wiener options to record
    shifts = 1
    precision = "fp32"

    def __init__(self, graph: OnnxGraph) -> None:
        info = graph.info
        self.graph = graph
        self.wiener = WienerSettings(**info.settings)
        names = info.outputs[:-1] if self.wiener.residual else info.outputs
        self.config = ModelConfig.from_dict({**info.model_config, "targets": list(names)})
        self.targets: tuple[str, ...] = tuple(names)

    @property
    def sample_rate(self) -> int:
        """Rate of the graph's input and outputs (Hz)."""
        return self.config.sample_rate

    @property
    def residual(self) -> bool:
        """Whether a ``residual`` output follows the targets."""
        return self.wiener.residual

    @property
    def output_names(self) -> tuple[str, ...]:
        """Names of the outputs (from the graph's metadata)."""
        return self.graph.output_names

    @property
    def hops(self) -> tuple[int, ...]:
        """The STFT hop (samples), for segment plans."""
        return (self.config.n_hop,)

    @property
    def parallel_segments(self) -> int:
        """Segments :meth:`separate_many` runs side by side on the CPU (the graph's threads,
        or 1): the engine's automatic batch size, ``N`` segments on ``N`` threads, one
        thread each."""
        return self.graph.parallel_segments

    @property
    def threads(self) -> int:
        """CPU threads the graph runs on (its own count; onnxruntime's choice, 0, counts
        as :func:`unmix.cpus.current_threads`)."""
        return self.graph.threads or current_threads()

    def settings_record(self) -> dict[str, Any]:
        """Nothing beyond model, targets and Wiener options decides the stems (see
        :meth:`unmix.separator.Separator.settings_record`)."""
        return {}

    def separate_many(self, mixtures: Sequence[np.ndarray]) -> list[np.ndarray]:
        """``(nb_channels, nb_timesteps)`` float32 mixtures → one ``(nb_outputs,
        nb_channels, nb_timesteps)`` float32 array each, in order; several side by side
        (:meth:`OnnxGraph.run_many`). Each result is its own array: nothing is stacked.

        Raises:
            AudioError: a channel count the graph cannot take.
            UnmixError: the graph gave NaN or infinite values.
        """
        keep_freed_memory()  # the engine's per-segment arrays are reused, not faulted in
        downmix = self.graph.info.nb_channels == 2
        inputs = [np.repeat(x, 2, axis=0) if downmix and x.shape[0] == 1 else x for x in mixtures]
        results = self.graph.run_many(inputs)
        return [
            stems.mean(axis=1, keepdims=True) if downmix and x.shape[0] == 1 else stems
            for x, stems in zip(mixtures, results, strict=True)
        ]


def as_graph_separator(separator: object) -> GraphSeparator | None:
    """The :class:`GraphSeparator` that does ``separator``'s work: itself, or the one an
    :class:`~unmix.export.separator.OnnxSeparator` delegates to (``None`` for a torch
    separator)."""
    if isinstance(separator, GraphSeparator):
        return separator
    inner = getattr(separator, "graph_separator", None)
    return inner if isinstance(inner, GraphSeparator) else None


def check_graph_options(
    path: str | Path, device: object = None, precision: str = "fp32", shifts: int = 1,
    weights: Weights | None = None,
) -> None:  # fmt: skip
    """Refuse what an exported graph cannot do, before it is opened (one line each).

    Raises:
        UnmixError: ensemble weights, ``shifts > 1``, a precision other than fp32, a device
            other than the CPU.
    """
    if weights is not None and len(ensemble_parts(path)) == 1:
        raise UnmixError(f"ensemble weights need an ensemble (models joined by +), got {path}")
    if shifts != 1:
        raise UnmixError(f"{path}: --shifts needs a torch model, not an exported graph")
    if str(precision).strip().lower() != "fp32":
        raise UnmixError(
            f"an .onnx model runs in fp32 (onnxruntime); got --precision {precision}: leave "
            "it out or separate with the torch model"
        )
    if device is not None and str(device) not in ("auto", "cpu"):
        raise UnmixError(f"an .onnx model runs on the CPU here (onnxruntime); got device {device}")


def load_graph_separator(
    path: str | Path,
    targets: Sequence[str] | None = None,
    wiener: WienerSettings | None = None,
    device: object = None,
    precision: str = "fp32",
    threads: int | None = None,
    *,
    shifts: int = 1,
    weights: Weights | None = None,
) -> GraphSeparator:
    """Open an exported graph for the engine, without PyTorch.

    The targets and Wiener settings are baked into the graph: asking for others raises
    (``None``, or the defaults, accept the graph's). One segment runs on ``threads``
    intra-op threads (Default: :func:`unmix.cpus.current_threads`, PyTorch's count), and
    the engine runs ``threads`` segments side by side, one thread each (the automatic
    ``--batch-size``).

    Raises:
        UnmixError: an unreadable or foreign graph, other targets or settings, a GPU, a
            precision other than fp32, shifts or ensemble weights.
    """
    check_graph_options(path, device, precision, shifts, weights)
    separator = GraphSeparator(OnnxGraph(path, threads=current_threads(threads)))
    if targets and tuple(targets) != separator.targets:
        raise UnmixError(
            f"{path} was exported with targets {list(separator.targets)}; re-export it with "
            f"--targets {' '.join(targets)}"
        )
    if wiener is not None and wiener not in (WienerSettings(), separator.wiener):
        raise UnmixError(
            f"{path} was exported with {separator.wiener}; the Wiener options are baked in: "
            "re-export it with the options you want"
        )
    return separator
