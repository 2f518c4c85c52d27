"""Export a separator as one ONNX graph (waveform in, stems out) and run such graphs.

* :func:`export_onnx` (:mod:`.driver`): trace, add metadata, check, write.
* :class:`OnnxGraph` (:mod:`.runtime`): onnxruntime with numpy only (no PyTorch).
* :class:`GraphSeparator`, :func:`load_graph_separator` (:mod:`.graph_separator`): a graph
  for the engine with numpy only (``unmix separate --model FILE.onnx``: no PyTorch).
* :class:`OnnxSeparator`, :func:`load_onnx_separator` (:mod:`.separator`): a graph behind
  the :class:`~unmix.separator.Separator` interface (torch), for Python users.
* :func:`export_step_onnx` (:mod:`.step_export`): the causal model's step graph.

Names are imported on first use, so that ``unmix.export.runtime`` stays free of PyTorch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_attributes

if TYPE_CHECKING:
    from .driver import export_onnx
    from .graph_separator import GraphSeparator, load_graph_separator
    from .metadata import GraphInfo
    from .runtime import OnnxGraph
    from .separator import OnnxSeparator, load_onnx_separator
    from .step_export import export_step_onnx

_LAZY = {
    "export_onnx": "driver",
    "GraphInfo": "metadata",
    "GraphSeparator": "graph_separator",
    "load_graph_separator": "graph_separator",
    "OnnxGraph": "runtime",
    "OnnxSeparator": "separator",
    "load_onnx_separator": "separator",
    "export_step_onnx": "step_export",
}
__all__ = [
    "GraphInfo",
    "GraphSeparator",
    "OnnxGraph",
    "OnnxSeparator",
    "export_onnx",
    "export_step_onnx",
    "load_graph_separator",
    "load_onnx_separator",
]
__getattr__ = lazy_attributes(__name__, _LAZY)
