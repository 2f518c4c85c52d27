"""Streaming audio plumbing: resampling streams, stem writers, decoding parts of files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from unmix import audio as audio_io
from unmix.errors import AudioError, UnmixError


@pytest.mark.parametrize(("rate_in", "rate_out"), [(48000, 44100), (22050, 44100), (44100, 44100)])
def test_stream_resampler_equals_whole_signal_resampling(rng, rate_in, rate_out):
    x = rng.standard_normal((2, 50001)).astype(np.float32)
    stream = audio_io.StreamResampler(rate_in, rate_out, 2)
    parts, pos = [], 0
    for size in [1, 4096, 333, 20000, 12345, 99999]:
        parts.append(stream.process(x[:, pos : pos + size]))
        pos += size
    parts.append(stream.flush())
    got = np.concatenate(parts, axis=1)
    assert got.shape[1] == audio_io.resampled_length(x.shape[1], rate_in, rate_out)
    np.testing.assert_array_equal(got, audio_io.resample(x, rate_in, rate_out))


def _blocks(x: np.ndarray, size: int = 5000):
    return [x[..., pos : pos + size] for pos in range(0, x.shape[-1], size)]


def test_writer_commits_all_files_or_none(tmp_path, rng):
    stems = rng.standard_normal((2, 2, 12000)).astype(np.float32)
    stems[0, 0, 7] = 3.0  # float WAV keeps values beyond full scale
    folder = tmp_path / "out" / "song"
    writer = audio_io.StemWriter(folder, ("vocals", "other"), "wav", 48000, 2)
    for block in _blocks(stems):
        writer.write(block[0], block)
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == []
    assert writer.commit() == []
    for k, name in enumerate(("vocals", "other")):
        data, rate = sf.read(folder / f"{name}.wav", dtype="float32", always_2d=True)
        assert rate == 48000
        np.testing.assert_array_equal(data.T, stems[k])
    assert sorted(p.name for p in folder.iterdir()) == ["other.wav", "vocals.wav"]

    failing = tmp_path / "out2" / "song"
    with (
        pytest.raises(RuntimeError),
        audio_io.StemWriter(failing, ("a", "b"), "flac", 44100, 1) as w,
    ):
        w.write(stems[0, :1], stems[:, :1])
        raise RuntimeError("decoder broke")
    assert not (tmp_path / "out2").exists()  # temporary files and new folders are gone


@pytest.mark.parametrize(("fmt", "bits"), [("flac", None), ("wav", "16"), ("mp3", None)])
def test_integer_and_lossy_outputs_clip_with_a_warning(tmp_path, fmt, bits):
    t = np.arange(44100) / 44100
    stem = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None].repeat(2, 0)
    stem[:, 1000:1010] = 1.5  # 20 samples over full scale, peak +3.5 dBFS
    writer = audio_io.StemWriter(tmp_path, ("vocals",), fmt, 44100, 2, bits)
    writer.write(stem, stem[None])
    warnings = writer.commit()
    assert len(warnings) == 1
    assert f"vocals.{fmt}: 20 samples" in warnings[0] and "+3.5 dBFS" in warnings[0]
    data, rate = audio_io.read(tmp_path / f"vocals.{fmt}")
    assert rate == 44100 and data.shape == stem.shape  # MP3 through PyAV: exact length too
    # clipped before encoding; the MP3 decoder's own ringing may overshoot a little
    assert np.abs(data[:, 1000:1010]).max() <= (1.1 if fmt == "mp3" else 1.0)


def test_bit_depth_and_rate_errors(tmp_path):
    with pytest.raises(AudioError, match="--bits float is not possible for flac"):
        audio_io.StemWriter(tmp_path, ("a",), "flac", 44100, 2, "float")
    with pytest.raises(AudioError, match="cannot write stems at 192000 Hz"):
        audio_io.StemWriter(tmp_path / "x" / "s.stem.mp4", ("a",), "stems", 192000, 2)
    assert not (tmp_path / "x").exists()  # (MP3 takes the nearest rate: tests/audio/test_sinks.py)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(UnmixError, match="cannot create output folder"):
        audio_io.StemWriter(blocker / "song", ("a",), "wav", 44100, 2)


def test_stem_mp4_holds_mixture_then_targets_aligned(tmp_path, stem_track: Path):
    streams, rate = audio_io.read_stems(stem_track, duration=3.0)  # mixture, drums, bass, ...
    mix, stems = streams[0], streams[1:3]
    path = tmp_path / "song.stem.mp4"
    writer = audio_io.StemWriter(path, ("drums", "bass"), "stems", rate, 2)
    for m, s in zip(_blocks(mix, 4410), _blocks(stems, 4410), strict=True):
        writer.write(m, s)
    writer.commit()
    assert audio_io.info(path).nb_streams == 3
    import av

    with av.open(str(path)) as container:
        titles = [
            s.metadata.get("title") or s.metadata.get("handler_name")
            for s in container.streams.audio
        ]
        assert all(s.codec_context.name == "aac" for s in container.streams.audio)
    assert titles == ["mixture", "drums", "bass"]
    for k, original in enumerate([mix, *stems]):
        decoded, decoded_rate = audio_io.read(path, stream=k)
        assert decoded_rate == rate
        # AAC frames pad the end to a multiple of 1024 samples; the start is exact
        assert original.shape[1] <= decoded.shape[1] < original.shape[1] + 1024
        err = decoded[:, : original.shape[1]] - original
        assert 10 * np.log10(np.sum(original**2) / np.sum(err**2)) > 15


def test_iter_blocks_cuts_start_and_duration_to_the_sample(tmp_path, rng):
    x = rng.uniform(-0.5, 0.5, (2, 5 * 8000)).astype(np.float32)
    sf.write(tmp_path / "a.wav", x.T, 8000, subtype="FLOAT")
    part = np.concatenate(
        list(audio_io.iter_blocks(tmp_path / "a.wav", start=2.5, duration=1.25)), 1
    )
    np.testing.assert_array_equal(part, x[:, 20000:30000])


def test_unreadable_inputs_give_one_line_errors(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.mp3").write_text("no audio in here\n" * 50)
    with pytest.raises(AudioError, match=r"empty\.wav: the file is empty \(0 bytes\)"):
        audio_io.info(tmp_path / "empty.wav")
    with pytest.raises(AudioError, match=r"text\.mp3: not a readable audio file") as err:
        audio_io.info(tmp_path / "text.mp3")
    assert "\n" not in str(err.value)
    assert audio_io.is_audio_name("x.STEM.MP4") and not audio_io.is_audio_name("notes.txt")
