"""Trace the parts of :mod:`unmix.export.chunked` and join them into one ONNX graph.

Each part is traced on its own with the TorchScript exporter (opset 17); the chunk bodies
become the ``body`` of ONNX ``Scan`` nodes (one iteration per chunk of frames, no state),
and the rest is inlined, every name prefixed with its part so that no two parts, and no
body and its outer graph, share a name. The result reads ``mixture (C, T)`` and writes
``stems (J', C, T)`` like the whole-input graph; ``--quantize int8`` quantises the head
(the networks) before the join, so the DFT bases of the ISTFT stay float32.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..errors import UnmixError
from ..separator import Separator
from .chunked import ChunkFilter, ChunkPlan, ChunkStats, Head, Tail, WindowGains
from .metadata import INPUT_NAME, OUTPUT_NAME
from .tracing import trace


class _Joiner:
    """Collects the nodes, initialisers and opsets of the joined graph."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.opsets: dict[str, int] = {}
        self.ir_version = 0

    def _adopt(self, model: Any) -> None:
        for opset in model.opset_import:
            self.opsets[opset.domain] = max(self.opsets.get(opset.domain, 0), opset.version)
        self.ir_version = max(self.ir_version, model.ir_version)

    def inline(self, data: bytes, prefix: str, wiring: dict[str, str]) -> None:
        """Add a traced part's nodes, its inputs and outputs renamed by ``wiring``."""
        import onnx

        model = onnx.load_from_string(data)
        self._adopt(model)
        graph = renamed(model.graph, prefix, wiring)
        self.nodes += graph.node
        self.initializers += graph.initializer

    def scan(
        self,
        data: bytes,
        prefix: str,
        inputs: list[str],
        outputs: list[str],
        states: tuple[list[str], list[str]] = ([], []),
    ) -> None:
        """Add a ``Scan`` over axis 0 of ``inputs`` whose body is the traced part ``data``;
        ``states`` names the initial and the final values of its state variables (the
        body's first inputs and outputs)."""
        import onnx
        from onnx import helper

        model = onnx.load_from_string(data)
        self._adopt(model)
        body = renamed(model.graph, prefix, {})
        body.name = prefix.strip("/")
        first, last = states
        node = helper.make_node(
            "Scan",
            [*first, *inputs],
            [*last, *outputs],
            name=prefix + "Scan",
            body=body,
            num_scan_inputs=len(inputs),
        )
        self.nodes.append(node)

    def constant(self, name: str, value: Tensor) -> None:
        """Add an initialiser (a float tensor) called ``name``."""
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(value.numpy(), name))

    def model(self, channels: int) -> Any:
        from onnx import TensorProto, helper

        graph = helper.make_graph(
            self.nodes,
            "unmix-separation",
            [
                helper.make_tensor_value_info(
                    INPUT_NAME, TensorProto.FLOAT, [channels, "nb_samples"]
                )
            ],
            [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, None)],
            initializer=self.initializers,
        )
        opsets = [helper.make_opsetid(domain, v) for domain, v in sorted(self.opsets.items())]
        model = helper.make_model(graph, opset_imports=opsets)
        model.ir_version = self.ir_version
        return model


def renamed(graph: Any, prefix: str, wiring: dict[str, str]) -> Any:
    """A copy of ``graph`` with every name prefixed, except those ``wiring`` maps.

    Raises:
        UnmixError: a node with a subgraph (the parts are traced without control flow).
    """
    import onnx

    out = onnx.GraphProto()
    out.CopyFrom(graph)

    def name(old: str) -> str:
        return old if not old else wiring.get(old, prefix + old)

    for value in [*out.input, *out.output, *out.value_info]:
        value.name = name(value.name)
    for tensor in out.initializer:
        tensor.name = name(tensor.name)
    for node in out.node:
        if any(attr.type in (attr.GRAPH, attr.GRAPHS) for attr in node.attribute):
            raise UnmixError(f"cannot join the graph: node {node.name} has a subgraph")
        node.name = prefix + node.name
        node.input[:] = [name(n) for n in node.input]
        node.output[:] = [name(n) for n in node.output]
    return out


def chunked_graph(
    separator: Separator,
    nb_channels: int,
    plan: ChunkPlan,
    folder: Path,
    quantize_head: Callable[[bytes], bytes] | None = None,
) -> bytes:
    """The joined graph of ``separator`` for ``nb_channels``-channel input (ONNX bytes),
    frames grouped as ``plan`` says (:func:`~unmix.export.chunked.plan_chunks`).

    ``quantize_head`` (bytes → bytes) is applied to the traced head (STFT and networks).
    """
    config = separator.config
    nb_out = len(separator.output_names)
    joiner = _Joiner()
    example = torch.randn(nb_channels, 4 * config.n_fft, generator=torch.Generator().manual_seed(0))
    head = trace(
        Head(separator, plan).eval(),
        [example],
        [INPUT_NAME],
        ["v", "xr", "xi"],
        {INPUT_NAME: {1: "nb_samples"}, "v": {0: "k"}, "xr": {0: "k"}, "xi": {0: "k"}},
        folder / "head.onnx",
    )
    if quantize_head is not None:
        head = quantize_head(head)
    joiner.inline(head, "head/", {INPUT_NAME: INPUT_NAME, "v": "v", "xr": "xr", "xi": "xi"})
    gains = _em_passes(joiner, separator, nb_channels, plan, folder)
    chunk = _chunk_examples(separator, nb_channels, plan)
    scale = ["scale"] if gains else []
    extra = [*gains, *scale]
    spill = torch.zeros(nb_out * nb_channels, (config.n_fft // config.n_hop - 1) * config.n_hop)
    body = trace(
        ChunkFilter(separator, plan).eval(),
        [
            spill,
            *chunk,
            *([chunk_gains(separator, plan)] * len(gains)),
            *([torch.ones(1)] if gains else []),
        ],
        ["spill", "v", "xr", "xi", *[f"g{i}" for i in range(len(gains))], *scale],
        ["spill_out", "samples"],
        {},
        folder / "filter.onnx",
    )
    joiner.constant("spill0", spill)
    joiner.scan(body, "filter/", ["v", "xr", "xi", *extra], ["samples"], (["spill0"], ["spill"]))
    span = plan.frames * config.n_hop
    tail = trace(
        Tail(separator, plan, nb_out).eval(),
        [torch.zeros(3, nb_out * nb_channels, span), spill, example],
        ["samples", "spill", INPUT_NAME],
        [OUTPUT_NAME],
        {"samples": {0: "k"}, INPUT_NAME: {1: "nb_samples"}, OUTPUT_NAME: {2: "nb_samples"}},
        folder / "tail.onnx",
    )
    wiring = {"samples": "samples", "spill": "spill", INPUT_NAME: INPUT_NAME}
    joiner.inline(tail, "tail/", wiring | {OUTPUT_NAME: OUTPUT_NAME})
    return bytes(joiner.model(nb_channels).SerializeToString())


def _em_passes(
    joiner: _Joiner, separator: Separator, nb_channels: int, plan: ChunkPlan, folder: Path
) -> list[str]:
    """One ``Scan`` of :class:`ChunkStats` and one :class:`WindowGains` per EM iteration;
    returns the names of the window statistics (``scale`` holds the window scales)."""
    chunk = _chunk_examples(separator, nb_channels, plan)
    gains: list[str] = []
    for k in range(plan.niter):
        extra = [*gains, "scale"] if k else []
        stats = trace(
            ChunkStats(separator.wiener, plan).eval(),
            [*chunk, *([chunk_gains(separator, plan)] * k), *([torch.ones(1)] if k else [])],
            ["v", "xr", "xi", *[f"g{i}" for i in range(k)], *(["scale"] if k else [])],
            ["sums", "peak"] if k == 0 else ["sums"],
            {},
            folder / f"stats{k}.onnx",
        )
        outputs = [f"sums{k}", "peaks"] if k == 0 else [f"sums{k}"]
        joiner.scan(stats, f"stats{k}/", ["v", "xr", "xi", *extra], outputs)
        mid = _trace_gains(separator, plan, k == 0, folder / f"gains{k}.onnx")
        wiring = {"sums": f"sums{k}", "peak_or_scale": "peaks" if k == 0 else "scale"}
        wiring |= {"gains": f"gains{k}", "scale": "scale" if k == 0 else f"scale_unused{k}"}
        joiner.inline(mid, f"gains{k}/", wiring)
        gains.append(f"gains{k}")
    return gains


def _chunk_examples(separator: Separator, nb_channels: int, plan: ChunkPlan) -> list[Tensor]:
    config = separator.config
    bins, c = config.n_fft // 2 + 1, plan.frames
    gen = torch.Generator().manual_seed(1)
    V = torch.rand(c, len(separator.targets), config.nb_channels, bins, generator=gen)
    xr = torch.randn(c, nb_channels, bins, generator=gen)
    xi = torch.randn(c, nb_channels, bins, generator=gen)
    return [V, xr, xi]


def chunk_gains(separator: Separator, plan: ChunkPlan) -> Tensor:
    """An example of one chunk's window statistics ``(S, J', F)``."""
    bins = separator.config.n_fft // 2 + 1
    return torch.rand(plan.nb_sums, len(separator.output_names), bins)


def _trace_gains(separator: Separator, plan: ChunkPlan, first: bool, path: Path) -> bytes:
    per = plan.per_window or 3
    nb_chunks = 2 * per
    sums = torch.rand(
        nb_chunks, plan.nb_sums, len(separator.output_names), separator.config.n_fft // 2 + 1
    )
    second = torch.rand(nb_chunks, 1) + (0.5 if first else 1.0)
    return trace(
        WindowGains(separator.wiener, plan, first).eval(),
        [sums, second],
        ["sums", "peak_or_scale"],
        ["gains", "scale"],
        {"sums": {0: "k"}, "peak_or_scale": {0: "k"}, "gains": {0: "k"}, "scale": {0: "k"}},
        path,
    )
