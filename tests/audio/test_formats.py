"""The audio package: the one format table, rate bounds, mid-stream rate changes, spooling of
streams, short temporary names and the cleaning of stale ones (issues 13 and 20)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from unmix import audio as audio_io
from unmix.audio import formats
from unmix.audio.spool import seekable_input
from unmix.errors import AudioError
from unmix.fileio import TEMPORARY_NAME, host_tag, remove_stale_temporaries, temporary_file


class _NpySink:
    """A made-up format: every stream of the file saved as one ``.npy`` array on close."""

    def __init__(
        self, path: Path, names: tuple[str, ...], rate: int, nb_channels: int, subtype: str,
        options: object = None,
    ) -> None:  # fmt: skip
        self.path, self.parts = path, [[] for _ in names]

    def write(self, blocks: Sequence[np.ndarray]) -> None:
        for part, block in zip(self.parts, blocks, strict=True):
            part.append(block)

    def close(self) -> None:
        with open(self.path, "wb") as fh:
            np.save(fh, np.stack([np.concatenate(p, axis=-1) for p in self.parts]))


def test_a_new_format_is_one_table_entry(tmp_path, monkeypatch, rng):
    entry = formats.OutputFormat(
        "npy", ".npy", "NumPy", _NpySink, one_file=True, subtype="raw", unclipped=("raw",)
    )
    monkeypatch.setitem(formats.FORMATS, "npy", entry)
    assert audio_io.output_suffix("npy") == ".npy"
    mix = rng.standard_normal((2, 3000)).astype(np.float32)
    stems = rng.standard_normal((2, 2, 3000)).astype(np.float32)
    path = tmp_path / "song.npy"
    with audio_io.StemWriter(path, ("vocals", "other"), "npy", 44100, 2) as writer:
        writer.write(mix[:, :1000], stems[..., :1000])
        writer.write(mix[:, 1000:], stems[..., 1000:])
        assert not path.exists()
        assert writer.commit() == []  # raw samples: nothing clipped
    np.testing.assert_array_equal(np.load(path), np.concatenate([mix[None], stems]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["song.npy"]


def test_table_gives_cli_choices_and_bits_rules():
    assert audio_io.OUTPUT_FORMATS == ("wav", "flac", "mp3", "stems")
    assert audio_io.BIT_DEPTHS == {"wav": ("float", "16", "24"), "flac": ("24", "16")}
    assert audio_io.output_subtype("wav", None) == "FLOAT"
    assert audio_io.output_subtype("flac", "16") == "PCM_16"
    with pytest.raises(AudioError, match=r"--bits applies to wav and flac only, not to mp3$"):
        audio_io.output_subtype("mp3", "16")
    with pytest.raises(AudioError, match=r"not to stems \(AAC\)"):
        audio_io.output_subtype("stems", "24")
    with pytest.raises(AudioError, match="unknown output format 'ogg'"):
        audio_io.get_format("ogg")


def test_aac_rates_are_checked_before_anything_is_created(tmp_path):
    with pytest.raises(
        AudioError, match="cannot write stems at 192000 Hz: AAC stores at most 96000"
    ):
        audio_io.StemWriter(tmp_path / "x" / "s.stem.mp4", ("a",), "stems", 192000, 2)
    assert not (tmp_path / "x").exists()


def test_write_single_files_through_the_table(tmp_path, rng):
    x = rng.uniform(-0.5, 0.5, (2, 4000)).astype(np.float32)
    audio_io.write(tmp_path / "a.flac", x, 16000, bits="16")
    data, rate = audio_io.read(tmp_path / "a.flac")
    assert rate == 16000 and sf.info(tmp_path / "a.flac").subtype == "PCM_16"
    np.testing.assert_allclose(data, x, atol=1 / 2**15)
    with pytest.raises(AudioError, match=r"cannot write '\.ogg' files"):
        audio_io.write(tmp_path / "a.ogg", x, 16000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.flac"]


def test_header_rates_out_of_bounds_are_refused(tmp_path):
    path = tmp_path / "one-hertz.wav"
    sf.write(path, np.zeros((1000, 2), np.float32), 1)
    with pytest.raises(AudioError, match=r"one-hertz\.wav has a sample rate of 1 Hz"):
        audio_io.info(path)
    with pytest.raises(AudioError, match="sample rate of 1 Hz"):
        next(audio_io.iter_blocks(path))
    with pytest.raises(AudioError, match="sample rate"):
        audio_io.StreamResampler(1, 44100, 2)


def _mp3_part(rate: int, seconds: float) -> bytes:
    """A raw MP3 stream (no ID3 tag) of a tone, as parts of concatenated MP3s are."""
    buf = io.BytesIO()
    t = np.arange(int(seconds * rate)) / rate
    x = np.repeat((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None], 2, axis=0)
    with av.open(buf, mode="w", format="mp3") as out:
        stream = out.add_stream("libmp3lame", rate=rate, layout="stereo")
        for pos in range(0, x.shape[1], 1152):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(x[:, pos : pos + 1152]), format="fltp", layout="stereo"
            )
            frame.sample_rate, frame.pts = rate, pos
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    data = buf.getvalue()
    if data[:3] == b"ID3":  # skip the tag: its size is in 4 syncsafe bytes
        data = data[10 + (data[6] << 21 | data[7] << 14 | data[8] << 7 | data[9]) :]
    return data


def test_mp3_that_changes_rate_mid_stream_keeps_its_duration(tmp_path):
    path = tmp_path / "joined.mp3"
    path.write_bytes(_mp3_part(44100, 3.0) + _mp3_part(22050, 3.0))
    audio, rate = audio_io.read(path)
    assert rate == audio_io.info(path).sample_rate
    # unresampled, the 22.05 kHz part would be read as if it were at the declared rate
    # (or the other way round): 4.5 s or 9.1 s instead of 6
    assert abs(audio.shape[1] / rate - 6.0) < 0.15
    second = audio[:, int(4.0 * rate) : int(5.0 * rate)]
    spectrum = np.abs(np.fft.rfft(second[0]))
    assert abs(np.argmax(spectrum) * rate / second.shape[1] - 440) < 5  # not 880 or 220 Hz


def test_temporary_names_are_short_and_stale_ones_are_removed(tmp_path):
    tmp = temporary_file(tmp_path)
    assert len(tmp.name) < 40 and TEMPORARY_NAME.fullmatch(tmp.name)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    stale = tmp_path / f".unmix-{int(gone.stdout)}-abcd1234.part"
    stale.write_bytes(b"x" * 100)
    other = tmp_path / ".song.wav.abcd1234.part"  # not ours: never touched
    other.write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([tmp.name, other.name])


def test_stale_temporaries_of_another_machine_are_left_alone(tmp_path):
    # a folder shared by several machines: a process id means nothing on another host
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    pid = int(gone.stdout)
    here = host_tag()
    elsewhere = format((int(here, 16) + 1) % 16**6, "06x")
    mine = tmp_path / f".unmix-{here}-{pid}-abcd1234.part.wav"
    theirs = tmp_path / f".unmix-{elsewhere}-{pid}-abcd1234.part.wav"
    for path in (mine, theirs):
        path.write_bytes(b"x")
        assert TEMPORARY_NAME.fullmatch(path.name)
    assert temporary_file(tmp_path).name.startswith(f".unmix-{here}-{os.getpid()}-")
    assert remove_stale_temporaries(tmp_path) == [mine]
    assert theirs.exists()


def test_fifo_is_read_once_into_a_temporary_copy(tmp_path):
    wav = io.BytesIO()
    sf.write(wav, np.full((8000, 2), 0.25, np.float32), 8000, format="WAV", subtype="FLOAT")
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    feeder = threading.Thread(target=lambda: fifo.write_bytes(wav.getvalue()), daemon=True)
    feeder.start()
    with seekable_input(fifo, tmp_path) as copy:
        assert copy != fifo and copy.is_file()
        assert audio_io.info(copy).nb_frames == 8000  # opened twice: probe, then decode
        audio, rate = audio_io.read(copy)
    feeder.join(timeout=10)
    assert rate == 8000 and audio.shape == (2, 8000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe.wav"]  # copy removed


def test_endless_stream_of_zeros_is_refused_after_a_megabyte(tmp_path):
    with (
        pytest.raises(AudioError, match="/dev/zero: not a readable audio file"),
        seekable_input("/dev/zero", tmp_path),
    ):
        pass
    assert list(tmp_path.iterdir()) == []
