"""Export the causal streaming model as a step graph (:mod:`unmix.export.step`).

The graph takes ``block (C, n_hop)`` and the state (every tensor starts as zeros; names and
shapes in the metadata), and returns ``stems (J', C, n_hop)`` and the new state under the
same names with ``_out``. It is checked against :class:`~unmix.realtime.causal.CausalEngine`
(the engine of :class:`unmix.StreamSeparator`) before it is written.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..errors import UnmixError
from ..fileio import atomic_path
from ..realtime.causal import CausalEngine
from ..realtime.wiener import CausalWiener
from ..separator import Separator
from .driver import with_metadata
from .metadata import OPSET
from .runtime import import_onnxruntime
from .step import StepGraph
from .tracing import trace

STEP_FORMAT = "unmix.step-graph/1"
#: largest difference to the causal engine accepted by the check after export
STEP_TOLERANCE = 1e-3


def _initial_state(engine: CausalEngine) -> list[torch.Tensor]:
    state = engine.initial()
    tensors = [state.samples, state.lstm[0], state.lstm[1]]
    for k in range(engine.wiener.niter):
        A, B = state.wiener[2 * k], state.wiener[2 * k + 1]
        tensors += [A.real.clone(), A.imag.clone(), B]
    return [*tensors, state.tail]


def _metadata(
    engine: CausalEngine, graph: StepGraph, separator: Separator, state: list[torch.Tensor]
) -> dict[str, str]:
    w = engine.wiener
    residual = ("residual",) if w.residual else ()
    names = graph.state_names()
    return {
        "unmix_format": STEP_FORMAT,
        "unmix_version": __version__,
        "outputs": json.dumps([*separator.targets, *residual]),
        "sample_rate": str(separator.sample_rate),
        "nb_channels": str(engine.nb_channels),
        "n_fft": str(engine.n_fft),
        "n_hop": str(engine.n_hop),
        "block_samples": str(engine.n_hop),
        "delay_samples": str(engine.n_fft - engine.n_hop),
        "latency_samples": str(engine.latency),
        "latency": (
            "causal: call k returns the input n_fft - n_hop samples earlier, separated; the "
            "first (n_fft - n_hop) / n_hop calls return the silence before the stream"
        ),
        "state": json.dumps({n: list(t.shape) for n, t in zip(names, state, strict=True)}),
        "state_init": "zeros",
        "settings": json.dumps(
            {
                "niter": w.niter,
                "softmask": w.softmask,
                "residual": w.residual,
                "memory": w.memory,
                "eps": w.eps,
                "forgetting": engine.lam,
            }
        ),
        "model_config": json.dumps(separator.config.to_dict(), sort_keys=True),
        "opset": str(OPSET),
        "input": "block: float32 (nb_channels, block_samples); then every state tensor",
        "output": "stems: float32 (len(outputs), nb_channels, block_samples); then <state>_out",
    }


def export_step_onnx(
    separator: Separator,
    path: str | Path,
    nb_channels: int | None = None,
    wiener: CausalWiener | None = None,
) -> float:
    """Write the step graph of a causal (unidirectional UMX) separator.

    Returns:
        the largest difference to the causal engine over 24 steps of noise.

    Raises:
        UnmixError: a bidirectional model (it has no step: each frame needs the whole
            song) or another model than UMX, or a graph that does not match the engine.
    """
    separator = separator.cpu().eval()
    channels = nb_channels or separator.config.nb_channels
    engine = CausalEngine(
        separator, wiener or CausalWiener.from_settings(separator.wiener), channels
    )
    graph = StepGraph(engine).eval()
    state = _initial_state(engine)
    names = graph.state_names()
    block = torch.zeros(channels, engine.n_hop)
    with tempfile.TemporaryDirectory(prefix="unmix-export-") as tmp:
        outputs = ["stems", *[f"{n}_out" for n in names]]
        traced = trace(graph, [block, *state], ["block", *names], outputs, {}, Path(tmp) / "s.onnx")
        data = with_metadata(traced, _metadata(engine, graph, separator, state))
        with atomic_path(Path(path), suffix=".onnx.part") as part:
            part.write_bytes(data)
            return _check(part, engine, names, state)


def _check(path: Path, engine: CausalEngine, names: list[str], state: list[torch.Tensor]) -> float:
    ort = import_onnxruntime()
    session = ort.InferenceSession(path.read_bytes(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feed = [t.numpy() for t in state]
    engine_state = engine.initial()
    error = 0.0
    with torch.inference_mode():
        for _ in range(24):
            block = (0.1 * rng.standard_normal((engine.nb_channels, engine.n_hop))).astype(
                np.float32
            )
            expected, engine_state = engine.advance(engine_state, torch.from_numpy(block))
            out = session.run(None, {"block": block, **dict(zip(names, feed, strict=True))})
            feed = out[1:]
            error = max(error, float(np.abs(out[0] - expected.numpy()).max()))
    if not error <= STEP_TOLERANCE:
        raise UnmixError(
            f"the step graph differs from the causal engine by {error:.3g}; nothing was written"
        )
    return error
