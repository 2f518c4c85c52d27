"""Streaming precisions fp16/int8 (PackedStep): exactness in each, closeness to fp32, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from unmix import audio as audio_io
from unmix.cli import main
from unmix.errors import UnmixError
from unmix.hub.loading import save_model
from unmix.realtime import StreamSeparator
from unmix.realtime.fused import FusedStep
from unmix.realtime.packed import PackedStep, check_stream_precision

from .common import fixed_sizes, music_like, random_sizes, run_stream, tiny_separator

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.skipif(
        "fbgemm" not in torch.backends.quantized.supported_engines, reason="FBGEMM (x86-64)"
    ),
]

N = 6000
#: relative error of the network's output against float32 (random weights)
TOLERANCE = {"fp16": 1e-4, "int8": 2e-2}


@pytest.mark.parametrize("precision", ["fp16", "int8"])
@pytest.mark.parametrize("key", ["44k-stereo", "16k-mono"])
def test_packed_step_is_close_to_float32(precision: str, key: str) -> None:
    model = tiny_separator(key).model
    fused = FusedStep(model)
    packed = PackedStep(fused, precision)  # type: ignore[arg-type]
    C = model.branch("vocals").nb_channels
    x = torch.rand(25, 1, C, model.branch("vocals").nb_output_bins)
    with torch.inference_mode():
        ref, (h, c) = fused(x, fused.initial_state())
        got, (h2, c2) = packed(x, packed.initial_state())
    assert got.shape == ref.shape and h2.shape == h.shape and c2.shape == c.shape
    assert float((got - ref).abs().max() / ref.abs().max()) <= TOLERANCE[precision]
    assert float((h2 - h).abs().max()) <= 50 * TOLERANCE[precision]


@pytest.mark.parametrize("precision", ["fp16", "int8"])
@pytest.mark.parametrize("key", ["44k-stereo", "16k-mono"])
def test_same_output_whatever_the_block_sizes_in_each_precision(precision: str, key: str) -> None:
    stream = StreamSeparator(tiny_separator(key), precision=precision, nb_channels=2)
    audio = music_like(2, N)
    whole = run_stream(stream, audio, [N])  # the same precision's whole-file call
    assert np.abs(whole).max() > 1e-2
    for sizes in (fixed_sizes(N, 1), fixed_sizes(N, 256), fixed_sizes(N, 1024),
                  fixed_sizes(N, 4096), random_sizes(N, seed=1)):  # fmt: skip
        assert np.abs(run_stream(stream, audio, sizes) - whole).max() <= 1e-5
    impulse = np.zeros((2, 3000), np.float32)
    impulse[:, 0] = 1.0
    out = run_stream(stream, impulse, random_sizes(3000, seed=4, largest=700))
    assert np.flatnonzero(np.abs(out).max(axis=(0, 1)) > 0)[0] == stream.latency


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_stems_are_close_to_float32_streaming(precision: str) -> None:
    separator = tiny_separator()
    audio = music_like(2, N)
    ref = run_stream(StreamSeparator(separator), audio, [N])
    got = run_stream(StreamSeparator(separator, precision=precision), audio, [N])
    sdr = 10 * np.log10(np.sum(ref**2) / np.sum((ref - got) ** 2))
    assert sdr >= {"fp16": 60.0, "int8": 25.0}[precision]


def test_fp32_is_the_unchanged_engine() -> None:
    stream = StreamSeparator(tiny_separator(), precision="fp32")
    assert isinstance(stream.engine.step, FusedStep)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("name", "message"),
    [("bf16", "no bf16"), ("fp8", "unknown stream precision 'fp8'")],
)
def test_unknown_precisions_are_refused(name: str, message: str) -> None:
    with pytest.raises(UnmixError, match=message):
        check_stream_precision(name)
    assert check_stream_precision(" INT8 ") == "int8"


def test_lookahead_mode_refuses_a_reduced_precision() -> None:
    with pytest.raises(UnmixError, match="causal streaming"):
        StreamSeparator(tiny_separator(unidirectional=False), lookahead=0.1, precision="int8")


def test_cli_precision_option(tmp_path: Path) -> None:
    separator = tiny_separator("16k-mono")
    folder = save_model(tmp_path / "tiny", separator.config, separator.model)
    audio = music_like(1, 5000, seed=2)
    path = tmp_path / "song.wav"
    audio_io.write(path, audio, 16000)
    report = tmp_path / "r.json"
    code = main(["stream", str(path), "--model", str(folder), "-o", str(tmp_path / "out"),
                 "--precision", "fp16", "--report", str(report), "-q"])  # fmt: skip
    assert code == 0 and json.loads(report.read_text())["precision"] == "fp16"
    expected = run_stream(StreamSeparator(folder, precision="fp16"), audio, [5000])
    written, _ = audio_io.read(tmp_path / "out" / "song" / "vocals.wav")
    assert np.abs(written - expected[0, :, 511:]).max() <= 1e-5


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_shipped_model_is_exact_across_block_sizes_in_each_precision(
    clip: Path, precision: str
) -> None:
    audio, _ = audio_io.read(clip, duration=0.5)
    n = audio.shape[1]
    stream = StreamSeparator("umx-rt-preview", precision=precision)
    whole = run_stream(stream, audio, [n])
    assert np.abs(whole).max() > 1e-3
    for sizes in (fixed_sizes(n, 512), random_sizes(n, seed=5, largest=4000)):
        assert np.abs(run_stream(stream, audio, sizes) - whole).max() <= 1e-5
    fp32 = run_stream(StreamSeparator("umx-rt-preview"), audio, [n])
    sdr = 10 * np.log10(np.sum(fp32**2) / np.sum((fp32 - whole) ** 2))
    assert sdr >= {"fp16": 50.0, "int8": 20.0}[precision]
