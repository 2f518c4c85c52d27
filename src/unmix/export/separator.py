"""An exported graph behind the :class:`~unmix.separator.Separator` interface.

An :class:`OnnxSeparator` is a torch separator for Python users: same ``config``,
``wiener``, ``output_names``, ``residual`` and ``forward (S, C, T) → (S, J', C, T)``; the work
is done by onnxruntime through the :class:`~unmix.export.graph_separator.GraphSeparator` it
delegates to (which the engine calls directly, with numpy). ``unmix separate`` opens graphs
without PyTorch (:func:`~unmix.export.graph_separator.load_graph_separator`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ..filtering import WienerSettings
from ..separator import Separator
from .graph_separator import GraphSeparator, load_graph_separator
from .runtime import OnnxGraph


class OnnxSeparator(Separator):
    """Separate with an exported graph (CPU, onnxruntime).

    Args:
        graph: an opened :class:`OnnxGraph`, or a :class:`GraphSeparator` of one.

    Mono audio into a stereo graph is separated as the duplicated signal and the stems are
    downmixed, as the torch separator does; any other channel mismatch raises.
    """

    def __init__(self, graph: OnnxGraph | GraphSeparator) -> None:
        nn.Module.__init__(self)
        inner = graph if isinstance(graph, GraphSeparator) else GraphSeparator(graph)
        self.graph_separator = inner
        self.graph = inner.graph
        self.wiener = inner.wiener
        self.config = inner.config
        self.targets = inner.targets

    @property
    def output_names(self) -> tuple[str, ...]:
        """Names of the stacked outputs (from the graph's metadata)."""
        return self.graph.output_names

    @property
    def parallel_segments(self) -> int:
        """Segments one call runs side by side on the CPU (the graph's threads, or 1): the
        engine's automatic batch size, ``N`` segments on ``N`` threads, one thread each."""
        return self.graph.parallel_segments

    def forward(self, audio: Tensor) -> Tensor:
        """``(S, C, T)`` mixture → ``(S, J', C, T)`` stems; the ``S`` items side by side
        (:meth:`GraphSeparator.separate_many`)."""
        if audio.ndim != 3:
            raise ValueError(
                f"audio must be (nb_samples, nb_channels, nb_timesteps), got {tuple(audio.shape)}"
            )
        x = audio.detach().float().cpu().numpy()
        results = self.graph_separator.separate_many(list(x))
        stems = results[0][None] if len(results) == 1 else np.stack(results)  # no copy of one
        return torch.from_numpy(stems).to(audio.device)


def load_onnx_separator(
    path: str | Path,
    targets: Sequence[str] | None = None,
    wiener: WienerSettings | None = None,
    device: str | torch.device | None = None,
    precision: str = "fp32",
) -> OnnxSeparator:
    """Open an exported graph for the engine.

    The targets and Wiener settings are baked into the graph: asking for others raises
    (``None``, or the defaults, accept the graph's). The graph gets PyTorch's thread count
    (``unmix separate --threads N``): the engine hands it ``N`` segments at a time
    (the automatic ``--batch-size``), which run side by side on one thread each; a segment
    alone runs on ``N`` intra-op threads. The checks and errors are those of
    :func:`~unmix.export.graph_separator.load_graph_separator`.

    Raises:
        UnmixError: an unreadable or foreign graph, other targets or settings, a GPU, or a
            precision other than fp32.
    """
    device_name = None if device is None else str(device)
    threads = torch.get_num_threads()
    return OnnxSeparator(
        load_graph_separator(path, targets, wiener, device_name, precision, threads)
    )
