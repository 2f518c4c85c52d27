"""``unmix separate --model FILE.onnx`` never imports PyTorch, and writes the stems and
records of the torch path bit for bit (the engine driving an ``OnnxSeparator`` through its
``forward``, as it did before); the torch-free loader refuses what the torch one refuses,
with the same lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import Tensor, nn

from unmix import audio as audio_io
from unmix.commands.common import model_label, model_source
from unmix.config import ModelConfig
from unmix.engine import OutputOptions, plan_segments, separate_files
from unmix.engine.calls import separate_batch
from unmix.errors import UnmixError
from unmix.export import OnnxSeparator, export_onnx, load_onnx_separator
from unmix.export.graph_separator import GraphSeparator, load_graph_separator
from unmix.filtering import WienerSettings
from unmix.hub.loading import load_separator
from unmix.models.architectures import get_architecture
from unmix.separator import Separator

from ..helpers import randomize

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIG = ModelConfig(
    targets=("vocals", "other"), sample_rate=44100, n_fft=1024, n_hop=256, nb_channels=2,
    hidden_size=16, nb_layers=1, max_bin=None,
)  # fmt: skip

#: runs the CLI in a process where any import of torch fails, and checks none happened
NO_TORCH = """
import sys

class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"{name} must not be imported")

sys.meta_path.insert(0, NoTorch())
from unmix.cli import main

code = main(sys.argv[1:])
assert "torch" not in sys.modules
sys.exit(code)
"""


@pytest.fixture(scope="module")
def graph(tmp_path_factory) -> Path:
    model = get_architecture(CONFIG.arch).build(CONFIG)
    randomize(model, 5)
    separator = Separator(model, CONFIG, WienerSettings(niter=1, wiener_win_len=20)).freeze()
    path = tmp_path_factory.mktemp("graph") / "tiny.onnx"
    export_onnx(separator, path)
    return path


@pytest.fixture(scope="module")
def mono(clip: Path, tmp_path_factory) -> Path:
    audio, rate = audio_io.read(clip, duration=3.0)
    path = tmp_path_factory.mktemp("mono") / "mono.wav"
    sf.write(path, audio.mean(axis=0), rate, subtype="FLOAT")
    return path


class ThroughForward(Separator):
    """An :class:`OnnxSeparator` as the engine drove it before: a torch separator whose
    ``forward`` it calls with a batch tensor (the stems stacked and sliced apart again)."""

    def __init__(self, onnx: OnnxSeparator) -> None:
        nn.Module.__init__(self)
        self.onnx = onnx
        self.config, self.wiener, self.targets = onnx.config, onnx.wiener, onnx.targets

    def forward(self, audio: Tensor) -> Tensor:
        return self.onnx(audio)


def torch_free_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    argv = [sys.executable, "-c", NO_TORCH, "separate", *map(str, args)]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)


def torch_path(graph: Path, source: Path, out: Path, threads: int, **options) -> None:
    """The same separation as the CLI's, through torch (``load_onnx_separator``)."""
    segment, overlap = options.pop("segment", 60.0), options.pop("overlap", 8.0)
    torch.set_num_threads(threads)  # what --threads did: the graph gets PyTorch's count
    try:
        separator = ThroughForward(load_onnx_separator(graph))
    finally:
        torch.set_num_threads(1)
    assert separator.onnx.graph.threads == threads
    options = OutputOptions(
        out, model=model_label(str(graph)), model_source=model_source(str(graph)), **options
    )
    plan = plan_segments(separator, segment, overlap)
    result = separate_files(separator, [source], options, plan=plan)
    assert result.failed == 0 and len(result.reports) == 1


def outputs(folder: Path) -> dict[str, object]:
    found: dict[str, object] = {
        str(p.relative_to(folder)): sf.read(p, dtype="float32")[0]
        for p in [*folder.rglob("*.wav"), *folder.rglob("*.flac")]
    }
    for record in folder.rglob(".unmix.json"):
        found[str(record.relative_to(folder))] = json.loads(record.read_text())
    return found


def assert_same(got: dict[str, object], expected: dict[str, object]) -> None:
    assert sorted(got) == sorted(expected)
    for name, value in expected.items():
        if isinstance(value, np.ndarray):
            assert np.array_equal(got[name], value), name  # type: ignore[arg-type]
            assert np.abs(value).max() > 1e-2, name
        else:
            assert got[name] == value, name


def test_stereo_segments_side_by_side_without_torch(graph, clip, tmp_path):
    """The bundled example in several 1-s segments, two at a time on two threads."""
    out = tmp_path / "free"
    options = ["--segment", "1", "--overlap", "0.25", "--batch-size", "2", "--threads", "2"]
    run = torch_free_cli(clip, "--model", graph, "-o", out, *options)
    assert run.returncode == 0, run.stderr
    assert "on cpu (2 threads, batches of up to 2 segments)" in run.stderr
    torch_path(graph, clip, tmp_path / "torch", 2, segment=1.0, overlap=0.25, batch_size=2)
    got, expected = outputs(out), outputs(tmp_path / "torch")
    assert sorted(got) == [
        "tiny/nightowl-preview/.unmix.json",
        "tiny/nightowl-preview/other.wav",
        "tiny/nightowl-preview/vocals.wav",
    ]
    assert_same(got, expected)


def test_mono_without_torch(graph, mono, tmp_path):
    """Mono into the stereo graph: duplicated in, stems averaged, mono out; a FLAC output
    and a part of the input (--start/--duration)."""
    out = tmp_path / "free"
    options = ["--start", "0.5", "--duration", "2", "--flac", "--threads", "1"]
    run = torch_free_cli(mono, "--model", graph, "-o", out, "-q", *options)
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    torch_path(graph, mono, tmp_path / "torch", 1, start=0.5, duration=2.0, fmt="flac")
    got = outputs(out)
    assert sorted(got) == [
        "tiny/mono/.unmix.json", "tiny/mono/other.flac", "tiny/mono/vocals.flac",
    ]  # fmt: skip
    assert all(v.shape == (2 * 44100,) for v in got.values() if isinstance(v, np.ndarray))
    assert_same(got, outputs(tmp_path / "torch"))


def test_errors_without_torch(graph, clip, tmp_path):
    run = torch_free_cli(clip, "--model", graph, "-o", tmp_path, "--precision", "bf16")
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [
        "unmix: error: an .onnx model runs in fp32 (onnxruntime); got --precision bf16: leave "
        "it out or separate with the torch model"
    ]
    assert not list(tmp_path.rglob("*.wav"))


@pytest.mark.parametrize(
    ("options", "line"),
    [
        ({"targets": ["vocals"]}, "re-export it with --targets vocals"),
        ({"targets": ["other", "vocals"]}, "exported with targets ['vocals', 'other']"),
        ({"wiener": WienerSettings(niter=2)}, "the Wiener options are baked in"),
        ({"wiener": WienerSettings(residual=True)}, "the Wiener options are baked in"),
        ({"precision": "bf16"}, "an .onnx model runs in fp32 (onnxruntime); got --precision"),
        ({"device": "cuda"}, "an .onnx model runs on the CPU here (onnxruntime); got device"),
        ({"device": "mps"}, "got device mps"),
        ({"shifts": 2}, "--shifts needs a torch model, not an exported graph"),
        ({"weights": [2.0, 1.0]}, "ensemble weights need an ensemble (models joined by +)"),
    ],
    ids=[
        "one-target",
        "target-order",
        "niter",
        "residual",
        "bf16",
        "cuda",
        "mps",
        "shifts",
        "weights",
    ],
)
def test_the_torch_free_loader_refuses_with_the_same_line(graph, options, line):
    with pytest.raises(UnmixError) as torch_error:
        load_separator(graph, **options)
    with pytest.raises(UnmixError) as free_error:
        load_graph_separator(graph, **options)
    assert str(free_error.value) == str(torch_error.value)
    assert line in str(free_error.value) and "\n" not in str(free_error.value)


def test_the_loaders_accept_the_same(graph):
    for options in ({}, {"targets": ["vocals", "other"]}, {"wiener": WienerSettings()}):
        free = load_graph_separator(graph, device="cpu", threads=1, **options)
        onnx = load_separator(graph, device="auto", **options)
        assert isinstance(onnx, OnnxSeparator)
        assert (free.targets, free.wiener, free.config) == (onnx.targets, onnx.wiener, onnx.config)
        assert (free.output_names, free.hops, free.sample_rate) == (
            onnx.output_names, onnx.hops, onnx.sample_rate,
        )  # fmt: skip
        assert free.settings_record() == onnx.settings_record() == {}


def test_batches_are_not_stacked(graph, monkeypatch):
    """The engine hands the graph's own result arrays on: no batch array, no copies."""
    separator = load_graph_separator(graph, threads=2)
    ran: list[np.ndarray] = []
    real = GraphSeparator.separate_many

    def spy(self, mixtures):  # type: ignore[no-untyped-def]
        ran.extend(real(self, mixtures))
        return ran[-len(mixtures) :]

    monkeypatch.setattr(GraphSeparator, "separate_many", spy)
    rng = np.random.default_rng(0)
    segments = [rng.standard_normal((2, 8000)).astype(np.float32) * 0.1 for _ in range(3)]
    got = separate_batch(separator, segments)
    assert len(got) == len(ran) == 3
    for stems, own in zip(got, ran, strict=True):
        assert stems.shape == (2, 2, 8000)
        assert np.shares_memory(stems, own)
    assert not np.shares_memory(got[0], got[1])
    mono = separate_batch(separator, [segments[0][:1]])  # mono: duplicated in, averaged out
    assert mono[0].shape == (2, 1, 8000)
    (twice,) = separate_batch(separator, [segments[0][[0, 0]]])
    assert np.array_equal(mono[0], twice.mean(axis=1, keepdims=True))
