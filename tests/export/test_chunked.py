"""The chunked graph (Wiener filter and ISTFT in Scan bodies) against the whole-input graph
and the torch separator: every EM variant, lengths with partial windows and chunks, one-
and two-channel graphs; how frames are grouped; the fallback for tiny Wiener windows."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from unmix.config import ModelConfig
from unmix.errors import UnmixError
from unmix.export import OnnxGraph, export_onnx
from unmix.export.chunked import plan_chunks
from unmix.filtering import WienerSettings
from unmix.models.architectures import get_architecture
from unmix.separator import Separator

from ..helpers import randomize

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(nb_channels: int = 2, n_fft: int = 512, n_hop: int = 128) -> ModelConfig:
    return ModelConfig(
        targets=("vocals", "drums", "other"), sample_rate=16000, n_fft=n_fft, n_hop=n_hop,
        nb_channels=nb_channels, hidden_size=16, nb_layers=1, max_bin=None,
    )  # fmt: skip


def separator(config: ModelConfig, settings: WienerSettings, seed: int = 0) -> Separator:
    model = get_architecture(config.arch).build(config)
    randomize(model, seed)
    return Separator(model.freeze(), config, settings).freeze()


def scans(path) -> int:
    return sum(node.op_type == "Scan" for node in onnx.load(path).graph.node)


@pytest.mark.parametrize(
    "settings,frames,per_window",
    [
        (WienerSettings(niter=1), 12, 25),  # 300-frame windows: 25 chunks of 12
        (WienerSettings(niter=1, wiener_win_len=100), 10, 10),
        (WienerSettings(niter=2, wiener_win_len=7), 7, 1),  # no divisor near 12: the window
        (WienerSettings(niter=1, wiener_win_len=None), 12, None),  # one window over all
        (WienerSettings(niter=0), 12, None),  # no statistics, no windows
    ],
)
def test_plan(settings, frames, per_window):
    plan = plan_chunks(settings, 2)
    assert plan is not None
    assert (plan.frames, plan.per_window, plan.niter, plan.stereo) == (
        frames, per_window, settings.niter, True,
    )  # fmt: skip


def test_tiny_windows_fall_back_to_the_whole_graph(tmp_path):
    settings = WienerSettings(niter=1, wiener_win_len=2)
    assert plan_chunks(settings, 2, overhang=3) is None
    sep = separator(tiny(), settings)
    path = tmp_path / "tiny-windows.onnx"
    export_onnx(sep, path)
    assert scans(path) == 0
    audio = np.random.default_rng(0).standard_normal((2, 9000)).astype(np.float32) * 0.1
    with torch.inference_mode():
        expected = sep(torch.from_numpy(audio)[None])[0].numpy()
    assert np.abs(OnnxGraph(path).run(audio) - expected).max() <= 1e-4


def test_unknown_layout(tmp_path):
    with pytest.raises(UnmixError, match="unknown graph layout 'flat'"):
        export_onnx(separator(tiny(), WienerSettings()), tmp_path / "x.onnx", layout="flat")
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize(
    "settings,scan_count",
    [
        (WienerSettings(niter=1, wiener_win_len=30), 2),
        (WienerSettings(niter=0, residual=True), 1),
        (WienerSettings(niter=1, softmask=True, residual=True, wiener_win_len=24), 2),
        (WienerSettings(niter=2, wiener_win_len=None), 3),
        (WienerSettings(niter=3, wiener_win_len=20), 4),
    ],
    ids=["niter1", "niter0-residual", "softmask-residual", "niter2-one-window", "niter3"],
)
@pytest.mark.parametrize("model_channels,graph_channels", [(2, 2), (1, 1), (1, 2)])
def test_equals_the_whole_graph(settings, scan_count, model_channels, graph_channels, tmp_path):
    """Same stems as the whole-input graph (which the parity tests hold to torch) for every
    EM variant, the one-channel EM included, at lengths that end mid-chunk and mid-window,
    shorter than one chunk and shorter than one frame."""
    sep = separator(tiny(model_channels), settings, seed=model_channels)
    chunked, whole = tmp_path / "chunked.onnx", tmp_path / "whole.onnx"
    export_onnx(sep, chunked, nb_channels=graph_channels)
    export_onnx(sep, whole, nb_channels=graph_channels, layout="whole")
    assert scans(chunked) == scan_count and scans(whole) == 0
    graphs = OnnxGraph(chunked), OnnxGraph(whole)
    rng = np.random.default_rng(1)
    envelope = np.linspace(0.2, 3.0, 40000)  # peaks above scale_factor late in the file
    for length in (40000, 12345, 1500, 300):
        audio = (rng.standard_normal((graph_channels, length)) * envelope[:length]).astype(
            np.float32
        )
        got, expected = graphs[0].run(audio), graphs[1].run(audio)
        assert got.shape == expected.shape == (len(sep.output_names), graph_channels, length)
        assert np.abs(got - expected).max() <= 1e-5 * max(1.0, np.abs(expected).max())
