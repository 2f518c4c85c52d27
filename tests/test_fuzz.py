"""Fuzzing of the parsing paths (bounded): audio decoding, weights, configs, archives.

Whatever the bytes, each parser either returns a valid result or raises the project's
user-facing error (``UnmixError`` and subclasses): never another exception type.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unmix import audio as audio_io
from unmix.config import ModelConfig
from unmix.errors import UnmixError
from unmix.hub.archive import extract_zip
from unmix.hub.h5 import read_h5
from unmix.hub.weights import read_state_dict

FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# plausible starts of real files, so the fuzzer gets past the first magic-number check
PREFIXES = [
    b"",
    b"RIFF\x24\x08\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x02\x00\x44\xac\x00\x00",
    b"fLaC\x00\x00\x00\x22",
    b"ID3\x04\x00\x00\x00\x00\x00\x00\xff\xfb\x90\x64",
    b"OggS\x00\x02",
    b"\x00\x00\x00\x20ftypM4A ",
    b"PK\x03\x04",
    b"\x89HDF\r\n\x1a\n",
]


def _wav_header(nb_frames: int, channels: int, rate: int, bits: int) -> bytes:
    block = channels * bits // 8
    data = nb_frames * block
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * block, block, bits)
        + b"data"
        + struct.pack("<I", data)
    )


@FUZZ
@given(
    prefix=st.sampled_from(PREFIXES),
    body=st.binary(max_size=4096),
    suffix=st.sampled_from([".wav", ".mp3", ".flac", ".m4a", ".ogg", ""]),
)
def test_decoding_random_bytes(tmp_path: Path, prefix: bytes, body: bytes, suffix: str) -> None:
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(prefix + body)
    try:
        audio, rate = audio_io.read(path)
    except UnmixError:
        return
    assert audio.ndim == 2 and audio.shape[1] > 0 and rate > 0
    assert np.isfinite(audio).all()


@FUZZ
@given(
    nb_frames=st.integers(0, 3000),
    channels=st.integers(0, 9),
    rate=st.sampled_from([0, 1, 8000, 44100, 384000]),
    bits=st.sampled_from([8, 16, 24, 32]),
    cut=st.integers(0, 200),
)
def test_decoding_wav_headers_that_lie(
    tmp_path: Path, nb_frames: int, channels: int, rate: int, bits: int, cut: int
) -> None:
    """Headers whose sizes, channel counts or rates disagree with the data that follows."""
    data = (
        np.random.default_rng(nb_frames)
        .integers(0, 255, nb_frames * max(channels, 1) * 2, dtype=np.uint8)
        .tobytes()
    )
    path = tmp_path / "lying.wav"
    blob = _wav_header(nb_frames, channels, rate, bits) + data
    path.write_bytes(blob[: max(len(blob) - cut, 0)])
    try:
        audio, got_rate = audio_io.read(path)
    except UnmixError:
        return
    assert audio.shape[1] > 0 and got_rate > 0 and np.isfinite(audio).all()


@FUZZ
@given(
    prefix=st.sampled_from(PREFIXES),
    body=st.binary(max_size=2048),
    suffix=st.sampled_from([".pth", ".safetensors"]),
)
def test_weights_random_bytes(tmp_path: Path, prefix: bytes, body: bytes, suffix: str) -> None:
    path = tmp_path / f"vocals{suffix}"
    path.write_bytes(prefix + body)
    with pytest.raises(UnmixError):
        read_state_dict(path)


@FUZZ
@given(
    header=st.dictionaries(
        st.text(max_size=8),
        st.one_of(
            st.integers(),
            st.text(max_size=8),
            st.lists(st.integers(), max_size=3),
            st.dictionaries(st.text(max_size=4), st.integers(), max_size=3),
        ),
        max_size=4,
    ),
    tail=st.binary(max_size=64),
)
def test_safetensors_with_hostile_headers(tmp_path: Path, header: dict, tail: bytes) -> None:
    raw = json.dumps(header).encode()
    path = tmp_path / "vocals.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + tail)
    try:
        state = read_state_dict(path)
    except UnmixError:
        return
    assert isinstance(state, dict)


JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-10, 10**6)
    | st.floats(allow_nan=True)
    | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
CONFIG_KEYS = [
    "targets",
    "sample_rate",
    "n_fft",
    "n_hop",
    "nb_channels",
    "hidden_size",
    "nb_layers",
    "max_bin",
    "unidirectional",
    "arch",
    "extra",
    "bogus",
]


@FUZZ
@given(data=st.dictionaries(st.sampled_from(CONFIG_KEYS), JSONISH, max_size=6))
def test_model_config_parsing(data: dict) -> None:
    try:
        config = ModelConfig.from_dict(data)
    except UnmixError:
        return
    assert ModelConfig.from_dict(config.to_dict()) == config


@FUZZ
@given(prefix=st.sampled_from(PREFIXES), body=st.binary(max_size=2048))
def test_h5_random_bytes(tmp_path: Path, prefix: bytes, body: bytes) -> None:
    path = tmp_path / "vocals.h5"
    path.write_bytes(prefix + body)
    with pytest.raises(UnmixError):
        read_h5(path)


@FUZZ
@given(prefix=st.sampled_from(PREFIXES), body=st.binary(max_size=2048))
def test_zip_random_bytes(tmp_path: Path, prefix: bytes, body: bytes) -> None:
    path = tmp_path / "weights.zip"
    path.write_bytes(prefix + body)
    dest = tmp_path / "out"
    with pytest.raises(UnmixError):
        extract_zip(path, dest)
    assert not dest.exists()
