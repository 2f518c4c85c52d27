"""Exported graphs against the torch Separator on real music (the bundled example clip):
max abs difference <= 1e-4 and SDR of one against the other >= 80 dB, for UMX (the shipped
umx-preview: niter 0 and 1, softmask, residual, several Wiener windows), X-UMX, a
spectral-mono umxse-like model (1- and 2-channel graphs), an NNabla folder and a folder as
`unmix train` writes it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from unmix import audio as audio_io
from unmix.config import ModelConfig
from unmix.export import OnnxGraph, export_onnx
from unmix.filtering import WienerSettings
from unmix.hub.loading import load_separator, save_model
from unmix.models.architectures import get_architecture

from ..helpers import randomize
from ..nnabla_files import random_state, umx_arrays, write_h5

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = dict(hidden_size=16, nb_layers=1, max_bin=300)


@pytest.fixture(scope="module")
def music(clip: Path) -> np.ndarray:
    audio, rate = audio_io.read(clip)
    assert rate == 44100 and audio.shape[0] == 2
    return audio


def sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """SDR (dB) of ``estimate`` against ``reference`` over all stems."""
    return float(10 * np.log10(np.sum(reference**2) / np.sum((reference - estimate) ** 2)))


def assert_parity(separator, path: Path, audio: np.ndarray) -> np.ndarray:
    graph = OnnxGraph(path)
    got = graph.run(audio)
    x = torch.from_numpy(audio)[None]
    with torch.inference_mode():
        expected = separator(x)[0].numpy()
    assert got.shape == expected.shape == (len(separator.output_names), *audio.shape)
    assert graph.output_names == separator.output_names
    error = np.abs(got - expected).max()
    assert error <= 1e-4, f"max abs difference {error:.2e}"
    assert sdr(expected, got) >= 80
    assert np.abs(expected).max() > 1e-2  # not a silent model
    return got


@pytest.mark.parametrize(
    "settings",
    [
        WienerSettings(niter=0),
        WienerSettings(niter=1),
        WienerSettings(niter=1, softmask=True),
        WienerSettings(niter=1, residual=True),
        WienerSettings(niter=2, wiener_win_len=100),
    ],
    ids=["niter0", "niter1", "softmask", "residual", "niter2-win100"],
)
def test_umx_preview(settings, music, tmp_path):
    separator = load_separator("umx-preview", wiener=settings, device="cpu")
    path = tmp_path / "preview.onnx"
    export_onnx(separator, path, model_name="umx-preview")
    assert_parity(separator, path, music)


def random_separator(config: ModelConfig, settings: WienerSettings, seed: int = 0):
    model = get_architecture(config.arch).build(config)
    randomize(model, seed)
    from unmix.separator import Separator

    return Separator(model.freeze(), config, settings).freeze()


def test_xumx(music, tmp_path):
    config = ModelConfig(arch="xumx", **TINY)
    separator = random_separator(config, WienerSettings(niter=1, residual=True))
    export_onnx(separator, tmp_path / "xumx.onnx")
    assert_parity(separator, tmp_path / "xumx.onnx", music)


def test_xumx_selected_targets(music, tmp_path):
    """X-UMX with two outputs still runs every branch (the bridges need them)."""
    config = ModelConfig(arch="xumx", **TINY)
    full = random_separator(config, WienerSettings(niter=0))
    from unmix.separator import Separator

    separator = Separator(
        full.model.select_targets(["bass", "vocals"]),
        config.with_(targets=("bass", "vocals")),
        WienerSettings(niter=0),
    ).freeze()
    export_onnx(separator, tmp_path / "two.onnx")
    got = assert_parity(separator, tmp_path / "two.onnx", music)
    assert OnnxGraph(tmp_path / "two.onnx").output_names == ("bass", "vocals")
    assert got.shape[0] == 2


@pytest.mark.parametrize("channels", [1, 2])
def test_spectral_mono_model(channels, music, tmp_path):
    """umxse-like: 16 kHz, n_fft 1024, hop 512, one model channel; 1- or 2-channel graph."""
    config = ModelConfig(
        targets=("speech", "noise"),
        sample_rate=16000,
        n_fft=1024,
        n_hop=512,
        nb_channels=1,
        hidden_size=16,
        nb_layers=2,
        max_bin=513,
    )
    separator = random_separator(config, WienerSettings(niter=1), seed=3)
    path = tmp_path / "se.onnx"
    export_onnx(separator, path, nb_channels=channels)
    audio = music[:, :160000] if channels == 2 else music[:1, :160000]
    assert_parity(separator, path, np.ascontiguousarray(audio))
    assert OnnxGraph(path).info.nb_channels == channels


def test_nnabla_and_trained_folders(music, tmp_path):
    """An NNabla folder of <target>.h5 and the same weights as an unmix folder: same graph."""
    config = ModelConfig(**TINY, nb_channels=2).with_(nb_layers=2)
    states = {t: random_state(config, 7 + k) for k, t in enumerate(config.targets)}
    nnabla = tmp_path / "nnabla"
    nnabla.mkdir()
    for target, state in states.items():
        write_h5(nnabla / f"{target}.h5", umx_arrays(state))
    model = get_architecture("umx").build(config)
    for target, state in states.items():
        model.branches[target].load_state_dict(state)
    folder = save_model(tmp_path / "trained", config, model)
    outputs = []
    for source in (nnabla, folder):
        separator = load_separator(source, wiener=WienerSettings(niter=1), device="cpu")
        path = tmp_path / f"{source.name}.onnx"
        export_onnx(separator, path)
        outputs.append(assert_parity(separator, path, music[:, :200000]))
    assert np.abs(outputs[0] - outputs[1]).max() <= 1e-4


def test_int8_keeps_the_dft_float(music, tmp_path):
    """--quantize int8 stores the network's weights as int8 but leaves the STFT/ISTFT
    matrix products float32 (int8 DFT bases would cost far more quality)."""
    import onnx

    separator = random_separator(ModelConfig(**TINY), WienerSettings(niter=1), seed=5)
    path = tmp_path / "int8.onnx"
    export_onnx(separator, path, quantize="int8")
    nodes = onnx.load(path).graph.node
    # the STFT in the graph, the ISTFT in the body of the last Scan (the chunk filter)
    bodies = [a.g.node for n in nodes for a in n.attribute if a.HasField("g")]
    spectral = [n for n in nodes if "/stft/" in n.name] + list(bodies[-1])
    assert sum(n.op_type == "MatMul" for n in spectral) == 5  # two stages forward, three back
    assert not any("Integer" in n.op_type or "Quant" in n.op_type for n in spectral)
    assert any(n.op_type == "DynamicQuantizeLSTM" for n in nodes)
    assert OnnxGraph(path).info.quantization == "int8"
    audio = music[:, :100000]
    with torch.inference_mode():
        expected = separator(torch.from_numpy(audio)[None])[0].numpy()
    assert sdr(expected, OnnxGraph(path).run(audio)) >= 25
