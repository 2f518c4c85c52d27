"""Opening and running exported graphs: metadata, and one clear error for every bad input
(corrupt or foreign files, missing metadata, models or settings that cannot be exported,
the wrong channel count at run time); the graph runs in a process without PyTorch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from unmix import __version__
from unmix.config import ModelConfig
from unmix.errors import AudioError, UnmixError
from unmix.export import OnnxGraph, export_onnx, load_onnx_separator
from unmix.export.metadata import FORMAT, OPSET
from unmix.filtering import WienerSettings
from unmix.models.architectures import get_architecture
from unmix.models.contract import SeparationModel
from unmix.separator import Separator

from ..helpers import randomize

pytestmark = pytest.mark.usefixtures("one_thread")
MONO = ModelConfig(
    targets=("speech", "noise"), sample_rate=16000, n_fft=512, n_hop=128, nb_channels=1,
    hidden_size=8, nb_layers=1, max_bin=None,
)  # fmt: skip


def separator_of(config: ModelConfig, settings: WienerSettings) -> Separator:
    model = get_architecture(config.arch).build(config)
    randomize(model, 1)
    return Separator(model, config, settings).freeze()


@pytest.fixture(scope="module")
def mono_graph(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("graphs") / "mono.onnx"
    export_onnx(separator_of(MONO, WienerSettings(niter=1, residual=True)), path, model_name="se")
    return path


def test_metadata_says_everything_a_user_needs(mono_graph):
    meta = {p.key: p.value for p in onnx.load(mono_graph).metadata_props}
    assert meta["unmix_format"] == FORMAT
    assert meta["unmix_version"] == __version__
    assert json.loads(meta["outputs"]) == ["speech", "noise", "residual"]
    assert (meta["sample_rate"], meta["nb_channels"], meta["model"]) == ("16000", "1", "se")
    assert (meta["n_fft"], meta["n_hop"], meta["min_samples"]) == ("512", "128", "257")
    assert meta["latency_samples"] == "0" and "offline" in meta["latency"]
    assert meta["layout"] == "chunked" and OnnxGraph(mono_graph).info.layout == "chunked"
    assert json.loads(meta["settings"]) == {
        "niter": 1, "softmask": False, "residual": True, "wiener_win_len": 300,
        "scale_factor": 10.0, "eps": 1e-10,
    }  # fmt: skip
    assert ModelConfig.from_dict(json.loads(meta["model_config"])) == MONO
    assert onnx.load(mono_graph).opset_import[0].version == OPSET
    graph = onnx.load(mono_graph).graph
    assert [i.name for i in graph.input] == ["mixture"]
    assert [o.name for o in graph.output] == ["stems"]


def test_any_length_and_shorter_than_a_frame(mono_graph):
    """Dynamic length; audio under min_samples is zero-padded and cut back (as the engine)."""
    graph = OnnxGraph(mono_graph)
    sep = load_onnx_separator(mono_graph)
    for length in (100, 257, 4321):
        audio = np.random.default_rng(length).standard_normal((1, length)).astype(np.float32)
        stems = graph.run(audio)
        assert stems.shape == (3, 1, length) and np.isfinite(stems).all()
        with torch.inference_mode():
            via_module = sep(torch.from_numpy(audio)[None])[0].numpy()
        np.testing.assert_array_equal(via_module, stems)


def test_wrong_channel_count_at_run_time(mono_graph):
    graph = OnnxGraph(mono_graph)
    with pytest.raises(AudioError, match=r"exported for 1-channel audio.*--channels 2"):
        graph.run(np.zeros((2, 1000), np.float32))
    with pytest.raises(AudioError, match="exported for 1-channel"):
        graph.run(np.zeros(1000, np.float32))


def test_corrupt_file(tmp_path):
    path = tmp_path / "bad.onnx"
    path.write_bytes(b"\x08\x07garbage that is no protobuf" * 10)
    with pytest.raises(UnmixError, match="is not a readable ONNX model"):
        OnnxGraph(path)
    with pytest.raises(UnmixError, match="no such file"):
        OnnxGraph(tmp_path / "missing.onnx")


def test_foreign_graph_without_metadata(tmp_path):
    node = helper.make_node("Identity", ["mixture"], ["stems"])
    io = [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, None]) for n in ("mixture", "stems")
    ]
    model = helper.make_model(helper.make_graph([node], "foreign", io[:1], io[1:]))
    path = tmp_path / "foreign.onnx"
    onnx.save(model, path)
    with pytest.raises(UnmixError, match=r"no unmix metadata.*unmix export"):
        OnnxGraph(path)


@pytest.mark.parametrize(
    "key,value,message",
    [
        ("sample_rate", None, "metadata key 'sample_rate' is missing"),
        ("outputs", "vocals", "'outputs' must be a JSON list"),
        ("nb_channels", "3", "'nb_channels' must be an integer in 1..2"),
        ("unmix_format", "unmix.separation-graph/9", "re-export"),
    ],
)
def test_missing_or_malformed_metadata(mono_graph, tmp_path, key, value, message):
    model = onnx.load(mono_graph)
    props = {p.key: p.value for p in model.metadata_props}
    if value is None:
        del props[key]
    else:
        props[key] = value
    del model.metadata_props[:]
    for k, v in props.items():
        model.metadata_props.add(key=k, value=v)
    path = tmp_path / "edited.onnx"
    onnx.save(model, path)
    with pytest.raises(UnmixError, match=message):
        OnnxGraph(path)


def test_settings_are_baked_in(mono_graph):
    with pytest.raises(UnmixError, match="exported with targets"):
        load_onnx_separator(mono_graph, targets=["noise"])
    with pytest.raises(UnmixError, match="baked in"):
        load_onnx_separator(mono_graph, wiener=WienerSettings(niter=3))
    with pytest.raises(UnmixError, match="runs on the CPU"):
        load_onnx_separator(mono_graph, device="cuda")
    sep = load_onnx_separator(mono_graph, wiener=WienerSettings())  # the defaults: accepted
    assert sep.output_names == ("speech", "noise", "residual") and sep.residual
    assert sep.wiener == WienerSettings(niter=1, residual=True)


class _FFTModel(SeparationModel):
    """A model whose forward uses complex FFTs, which the ONNX exporter cannot trace."""

    def __init__(self) -> None:
        super().__init__()
        self.targets = ("a",)
        self.gain = torch.nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.fft.fft(x, dim=-1).abs()[..., None] * self.gain


def test_models_that_cannot_be_exported(tmp_path):
    target = tmp_path / "x.onnx"
    with pytest.raises(UnmixError, match="cannot export the _FFTModel model: the tracer failed"):
        export_onnx(Separator(_FFTModel(), MONO, WienerSettings(niter=0)).freeze(), target)
    stereo = separator_of(MONO.with_(nb_channels=2), WienerSettings(niter=0))
    with pytest.raises(UnmixError, match="1-channel graph of a 2-channel model"):
        export_onnx(stereo, target, nb_channels=1)
    assert not list(tmp_path.iterdir())  # nothing written, no temporary left


TORCH_FREE = """
import sys
import numpy as np
from unmix.export.runtime import OnnxGraph
graph = OnnxGraph(sys.argv[1])
stems = graph.run(np.load(sys.argv[2]))
np.save(sys.argv[3], stems)
assert 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)[:3]
print(graph.info.sample_rate, graph.output_names)
"""


@pytest.mark.slow
def test_umxhq_size_graph_runs_without_torch(clip, tmp_path):
    """A random-weight umxhq-size model: parity on real music, and the graph runs in a
    process that never imports PyTorch."""
    from unmix import audio as audio_io
    from unmix.config import CONFIGS

    separator = separator_of(CONFIGS["umxhq"], WienerSettings(niter=1))
    path = tmp_path / "umxhq.onnx"
    export_onnx(separator, path)
    audio, _ = audio_io.read(clip, duration=2.0)
    np.save(tmp_path / "mix.npy", audio)
    result = subprocess.run(
        [sys.executable, "-c", TORCH_FREE, str(path), str(tmp_path / "mix.npy"), str(tmp_path / "out.npy")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "44100"
    got = np.load(tmp_path / "out.npy")
    with torch.inference_mode():
        expected = separator(torch.from_numpy(audio)[None])[0].numpy()
    error = np.abs(got - expected).max()
    assert error <= 1e-4, f"max abs difference {error:.2e}"
    assert np.abs(expected).max() > 1e-3
    assert 10 * np.log10(np.sum(expected**2) / np.sum((got - expected) ** 2)) >= 80


def test_graph_with_external_data_is_refused(mono_graph, tmp_path):
    """A graph never makes unmix (or onnxruntime) read another file."""
    from onnx.external_data_helper import convert_model_to_external_data

    model = onnx.load(mono_graph)
    convert_model_to_external_data(
        model, all_tensors_to_one_file=True, location="w.bin", size_threshold=0
    )
    onnx.save(model, tmp_path / "split.onnx")
    assert (tmp_path / "w.bin").stat().st_size > 0
    with pytest.raises(UnmixError, match="external data"):
        OnnxGraph(tmp_path / "split.onnx")
