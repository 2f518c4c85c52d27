"""A corpus of bad or unusual inputs, generated on the fly (nothing binary is checked in).

Each ``make_*`` function writes one case into a folder and returns its path. The tests in
``test_hardening.py`` run every command of unmix on them and check the promise: a one-line
error that names the problem and a non-zero exit, or a correct result; never a traceback for
a user error and never a partial output file.
"""

from __future__ import annotations

import io
import math
import pickle
from pathlib import Path

import av
import numpy as np
import soundfile as sf


def _tone(seconds: float, rate: int, channels: int = 2) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 97 * t)
    return np.stack([x * (1 - 0.2 * c) for c in range(channels)], axis=1).astype(np.float32)


def make_wav(
    folder: Path, name: str = "tone.wav", seconds: float = 1.0, rate: int = 44100, channels: int = 2
) -> Path:
    path = folder / name
    sf.write(path, _tone(seconds, rate, channels), rate, subtype="PCM_16")
    return path


def make_empty_file(folder: Path) -> Path:
    path = folder / "empty.wav"
    path.write_bytes(b"")
    return path


def make_text_as_wav(folder: Path) -> Path:
    path = folder / "notes.wav"
    path.write_text("these are not the samples you are looking for\n" * 20)
    return path


def make_dir_named_wav(folder: Path) -> Path:
    path = folder / "folder.wav"
    path.mkdir()
    return path


def make_truncated(folder: Path, fmt: str) -> Path:
    """A 2-s file of ``fmt`` (wav, flac, mp3) cut to 40 % of its bytes."""
    path = folder / f"truncated.{fmt}"
    if fmt == "mp3":
        _encode_pyav(path, _tone(2.0, 44100), 44100, "mp3", "libmp3lame")
    else:
        sf.write(path, _tone(2.0, 44100), 44100, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.4)])
    return path


def _encode_pyav(path: Path, audio: np.ndarray, rate: int, fmt: str, codec: str) -> None:
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = "stereo" if audio.shape[1] == 2 else "mono"
        frame_size = 1152
        for start in range(0, audio.shape[0], frame_size):
            block = np.ascontiguousarray(audio[start : start + frame_size].T)
            frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=stream.layout.name)
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def make_one_sample(folder: Path) -> Path:
    path = folder / "one-sample.wav"
    sf.write(path, np.full((1, 2), 0.25, np.float32), 44100, subtype="FLOAT")
    return path


def make_non_finite(folder: Path) -> Path:
    path = folder / "nan-inf.wav"
    audio = _tone(1.0, 44100)
    audio[1000, 0] = np.nan
    audio[2000, 1] = np.inf
    sf.write(path, audio, 44100, subtype="FLOAT")
    return path


def make_six_channels(folder: Path) -> Path:
    return make_wav(folder, "surround-5.1.wav", 1.0, 44100, channels=6)


def make_rate(folder: Path, rate: int) -> Path:
    return make_wav(folder, f"rate-{rate}.wav", 1.0, rate)


def make_long_silence(folder: Path, hours: float = 3.0, rate: int = 8000) -> Path:
    """A long silent mono FLAC written block by block (never held in memory)."""
    path = folder / "long-silence.flac"
    block = np.zeros((rate * 60, 1), np.float32)
    with sf.SoundFile(path, "w", rate, 1, subtype="PCM_16", format="FLAC") as fh:
        for _ in range(math.ceil(hours * 60)):
            fh.write(block)
    return path


def make_unreadable(folder: Path) -> Path:
    path = make_wav(folder, "no-permission.wav")
    path.chmod(0)
    return path


def make_unicode_name(folder: Path) -> Path:
    return make_wav(folder, "Ünïcødé song — with spaces ♪.wav")


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.system, (f"touch '{self.marker}'",))


def make_pickle_bomb(folder: Path, marker: Path) -> Path:
    """A model folder whose ``vocals.pth`` would run a shell command if unpickled."""
    model = folder / "evil-model"
    model.mkdir()
    buf = io.BytesIO()
    pickle.dump({"fc1.weight": _Exploit(marker)}, buf)
    (model / "vocals.pth").write_bytes(buf.getvalue())
    return model
