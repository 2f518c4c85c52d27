"""An exported graph behind the :class:`~unmix.separator.Separator` interface.

The engine (segments, streaming, formats, outputs) drives an :class:`OnnxSeparator`
exactly like the torch separator: same ``config``, ``wiener``, ``output_names``,
``residual`` and ``forward (S, C, T) → (S, J', C, T)``; the work is done by onnxruntime.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ..config import ModelConfig
from ..errors import UnmixError
from ..filtering import WienerSettings
from ..heap import keep_freed_memory
from ..separator import Separator
from .runtime import OnnxGraph


class OnnxSeparator(Separator):
    """Separate with an exported graph (CPU, onnxruntime).

    Args:
        graph: an opened :class:`OnnxGraph`.

    Mono audio into a stereo graph is separated as the duplicated signal and the stems are
    downmixed, as the torch separator does; any other channel mismatch raises.
    """

    def __init__(self, graph: OnnxGraph) -> None:
        nn.Module.__init__(self)
        info = graph.info
        self.graph = graph
        self.wiener = WienerSettings(**info.settings)
        names = info.outputs[:-1] if self.wiener.residual else info.outputs
        self.config = ModelConfig.from_dict({**info.model_config, "targets": list(names)})
        self.targets = tuple(names)

    @property
    def output_names(self) -> tuple[str, ...]:
        """Names of the stacked outputs (from the graph's metadata)."""
        return self.graph.output_names

    @property
    def parallel_segments(self) -> int:
        """Segments one call runs side by side on the CPU: the engine's automatic batch size
        (:func:`unmix.engine.batcher.auto_batch_size`), so that ``N`` threads get ``N``
        segments at a time."""
        return self.graph.parallel_segments

    def forward(self, audio: Tensor) -> Tensor:
        """``(S, C, T)`` mixture → ``(S, J', C, T)`` stems; the ``S`` items side by side
        (:meth:`OnnxGraph.run_many`)."""
        if audio.ndim != 3:
            raise ValueError(
                f"audio must be (nb_samples, nb_channels, nb_timesteps), got {tuple(audio.shape)}"
            )
        keep_freed_memory()  # the engine's per-segment arrays are reused, not faulted in
        x = audio.detach().float().cpu().numpy()
        downmix = x.shape[1] == 1 and self.graph.info.nb_channels == 2
        if downmix:
            x = np.repeat(x, 2, axis=1)
        results = self.graph.run_many(list(x))
        stems = results[0][None] if len(results) == 1 else np.stack(results)  # no copy of one
        if downmix:
            stems = stems.mean(axis=2, keepdims=True)
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
    (``unmix separate --threads N``): one segment runs on ``N`` intra-op threads, and the
    engine hands it ``N`` segments at a time, which run side by side on one thread each.

    Raises:
        UnmixError: an unreadable or foreign graph, other targets or settings, a GPU, or a
            precision other than fp32.
    """
    if str(precision).strip().lower() != "fp32":
        raise UnmixError(
            f"an .onnx model runs in fp32 (onnxruntime); got --precision {precision}: leave "
            "it out or separate with the torch model"
        )
    if device is not None and str(device) not in ("auto", "cpu"):
        raise UnmixError(f"an .onnx model runs on the CPU here (onnxruntime); got device {device}")
    separator = OnnxSeparator(OnnxGraph(path, threads=torch.get_num_threads()))
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
