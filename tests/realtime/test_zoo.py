"""The shipped causal model umx-rt-preview: offline, small, causal, exact in streaming."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from unmix import audio as audio_io
from unmix.cli import main
from unmix.hub.loading import load_separator
from unmix.realtime import StreamSeparator

from .common import random_sizes, run_stream

pytestmark = pytest.mark.usefixtures("one_thread")

ZOO = Path(__file__).resolve().parents[2] / "src" / "unmix" / "zoo" / "umx-rt-preview"


def test_files_are_small_and_documented() -> None:
    sizes = {p.name: p.stat().st_size for p in ZOO.iterdir()}
    assert {"config.json", "training.json", "MODEL_CARD.md"} <= set(sizes)
    weights = [n for n in sizes if n.endswith(".safetensors")]
    assert sorted(weights) == ["bass.safetensors", "drums.safetensors", "other.safetensors",
                               "vocals.safetensors"]  # fmt: skip
    assert all(sizes[n] < 4_000_000 for n in weights)
    card = (ZOO / "MODEL_CARD.md").read_text()
    assert "non-commercial" in card and "SDR" in card


def test_loads_offline_as_a_causal_model_within_50_ms() -> None:
    separator = load_separator("umx-rt-preview", device="cpu", progress=False)
    cfg = separator.config
    assert cfg.unidirectional and cfg.n_fft <= 2048
    stream = StreamSeparator(separator)
    assert stream.latency == cfg.n_fft - 1 and stream.latency_ms <= 50


@pytest.mark.slow
def test_stream_is_exact_on_the_example_clip(clip: Path) -> None:
    audio, rate = audio_io.read(clip, duration=1.5)
    assert rate == 44100
    stream = StreamSeparator("umx-rt-preview")
    n = audio.shape[1]
    whole = run_stream(stream, audio, [n])
    assert np.abs(whole).max() > 1e-3
    for sizes in ([512] * (n // 512) + [n % 512], random_sizes(n, seed=11, largest=5000)):
        assert np.abs(run_stream(stream, audio, sizes) - whole).max() <= 1e-5
    impulse = np.zeros((2, 4096), np.float32)
    impulse[:, 0] = 1.0
    out = run_stream(stream, impulse, [4096])
    assert np.flatnonzero(np.abs(out).max(axis=(0, 1)) > 0)[0] == stream.latency


@pytest.mark.slow
def test_unmix_stream_on_the_example_clip_with_the_default_model(
    clip: Path, tmp_path: Path
) -> None:
    assert main(["stream", str(clip), "-o", str(tmp_path), "-q"]) == 0
    mix, rate = audio_io.read(clip)
    for name in ("vocals", "drums", "bass", "other"):
        stem, stem_rate = audio_io.read(tmp_path / "nightowl-preview" / f"{name}.wav")
        assert stem_rate == rate and stem.shape == mix.shape and np.isfinite(stem).all()
