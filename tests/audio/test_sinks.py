"""MP3 through PyAV (LAME): bit rate and preset honoured, any rate written at the nearest
MPEG rate with a note, exact length back."""

from __future__ import annotations

import av
import numpy as np
import pytest

from unmix import audio as audio_io
from unmix.audio.sinks import EncodeOptions
from unmix.errors import AudioError


def _tone(rate: int, seconds: float = 1.0, channels: int = 2) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    x = 0.25 * np.sin(2 * np.pi * 440 * t)
    return np.stack([x] * channels).astype(np.float32)


def _bit_rate(path) -> int:
    with av.open(str(path)) as container:
        return int(container.streams.audio[0].bit_rate)


@pytest.mark.parametrize(("rate", "written"), [(96000, 48000), (88200, 48000), (7000, 8000)])
def test_rates_outside_mp3_are_resampled_to_the_nearest_with_a_note(tmp_path, rate, written):
    x = _tone(rate)
    with audio_io.StemWriter(tmp_path, ("vocals",), "mp3", rate, 2) as writer:
        writer.write(x, x[None, :, : rate // 2])
        writer.write(x, x[None, :, rate // 2 :])
        notes = writer.commit()
    assert any(f"resampled from {rate} to {written} Hz" in n for n in notes)
    data, got = audio_io.read(tmp_path / "vocals.mp3")
    assert got == written and data.shape == (2, written)  # gapless: exact length


def test_bitrate_and_preset_are_honoured(tmp_path):
    x = _tone(44100, 3.0, channels=1)
    for kbps in (128, 320):
        folder = tmp_path / str(kbps)
        with audio_io.StemWriter(
            folder, ("a",), "mp3", 44100, 1, options=EncodeOptions(kbps, 7)
        ) as writer:
            writer.write(x, x[None])
            writer.commit()
        assert _bit_rate(folder / "a.mp3") == kbps * 1000
        data, _ = audio_io.read(folder / "a.mp3")
        assert data.shape == x.shape
        assert np.abs(data - x).max() < 0.05  # a real encoding of the tone
    with pytest.raises(AudioError, match="--mp3-bitrate 100 is not an MP3 bit rate"):
        EncodeOptions(100)
    with pytest.raises(AudioError, match="--mp3-preset 9 is not a preset"):
        EncodeOptions(320, 9)


def test_single_file_write_takes_the_nearest_rate(tmp_path):
    audio_io.write(tmp_path / "x.mp3", _tone(96000), 96000)
    assert audio_io.info(tmp_path / "x.mp3").sample_rate == 48000
