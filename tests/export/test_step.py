"""The causal model's step graph equals the engine of ``unmix.StreamSeparator``
(:class:`~unmix.realtime.causal.CausalEngine`) block by block, state carried by the caller."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from unmix.config import ModelConfig
from unmix.errors import UnmixError
from unmix.export.step_export import export_step_onnx
from unmix.filtering import WienerSettings
from unmix.models.architectures import get_architecture
from unmix.realtime import StreamSeparator
from unmix.realtime.wiener import CausalWiener
from unmix.separator import Separator

from ..helpers import randomize

pytestmark = pytest.mark.usefixtures("one_thread")


def causal_separator(nb_channels: int, unidirectional: bool = True) -> Separator:
    config = ModelConfig(
        n_fft=512, n_hop=128, nb_channels=nb_channels, hidden_size=16, nb_layers=2,
        max_bin=200, unidirectional=unidirectional,
    )  # fmt: skip
    model = get_architecture("umx").build(config)
    randomize(model, 4)
    return Separator(model, config, WienerSettings()).freeze()


@pytest.mark.parametrize(
    "nb_channels,wiener",
    [
        (2, CausalWiener(niter=1)),
        (2, CausalWiener(niter=0, softmask=True, residual=True)),
        (1, CausalWiener(niter=1, residual=True, memory=0.1)),
    ],
    ids=["stereo-niter1", "stereo-mask-residual", "mono-residual"],
)
def test_step_graph_equals_the_stream_engine(nb_channels, wiener, tmp_path):
    separator = causal_separator(nb_channels)
    stream = StreamSeparator(separator, wiener=wiener, nb_channels=nb_channels)
    engine = stream.engine
    path = tmp_path / "step.onnx"
    export_step_onnx(separator, path, nb_channels, wiener)
    model = onnx.load(path)
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["outputs"]) == list(stream.output_names)
    assert int(meta["latency_samples"]) == stream.latency
    shapes = json.loads(meta["state"])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()][1:]
    assert list(shapes) == names
    state = {n: np.zeros(shapes[n], np.float32) for n in names}  # every state starts at zero
    engine_state = engine.initial()
    audio = 0.3 * np.random.default_rng(1).standard_normal((nb_channels, 128 * 40))
    error, peak = 0.0, 0.0
    for k in range(40):
        block = audio[:, k * 128 : (k + 1) * 128].astype(np.float32)
        with torch.inference_mode():
            expected, engine_state = engine.advance(engine_state, torch.from_numpy(block))
        stems, *new = session.run(None, {"block": block, **state})
        state = dict(zip(names, new, strict=True))
        error = max(error, float(np.abs(stems - expected.numpy()).max()))
        peak = max(peak, float(np.abs(expected.numpy()).max()))
    assert error <= 1e-5, f"max abs difference {error:.2e}"
    assert peak > 1e-2


def test_bidirectional_model_has_no_step_graph(tmp_path):
    with pytest.raises(UnmixError, match="bidirectional"):
        export_step_onnx(causal_separator(2, unidirectional=False), tmp_path / "x.onnx")
    assert not list(tmp_path.iterdir())
