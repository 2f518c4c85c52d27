"""``unmix stream``: file in, stems out, block by block; report; refusals in one line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from unmix import audio as audio_io
from unmix.cli import main
from unmix.commands.stream import _summary_line
from unmix.hub.loading import save_model
from unmix.realtime import StreamSeparator
from unmix.realtime.pacing import Pacer, stream_report

from .common import music_like, run_stream, tiny_separator

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    separator = tiny_separator("16k-mono")
    folder = tmp_path_factory.mktemp("rt") / "tiny-rt"
    save_model(folder, separator.config, separator.model)
    return folder


@pytest.fixture(scope="module")
def song(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    audio = music_like(2, 9000, seed=3)
    path = tmp_path_factory.mktemp("in") / "song.wav"
    audio_io.write(path, audio, 16000)
    return path, audio


def test_stream_writes_aligned_stems_and_a_report(
    tiny_folder: Path,
    song: tuple[Path, np.ndarray],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path, audio = song
    report = tmp_path / "timing.json"
    code = main(["stream", str(path), "--model", str(tiny_folder), "-o", str(tmp_path),
                 "--block", "300", "--report", str(report)])  # fmt: skip
    assert code == 0
    stats = json.loads(report.read_text())
    assert stats["latency_samples"] == 511 and stats["block_samples"] == 300
    assert stats["blocks"] == 30 and stats["overruns"] is None
    assert 0 < stats["p50_ms"] <= stats["p99_ms"] <= stats["max_ms"]
    # the files equal the API's stream output shifted back by the latency
    stream = StreamSeparator(tiny_folder, nb_channels=2)
    expected = run_stream(stream, audio, [9000])[..., stream.latency :]
    for k, name in enumerate(("vocals", "drums")):
        written, rate = audio_io.read(tmp_path / "song" / f"{name}.wav")
        assert rate == 16000 and written.shape == audio.shape
        assert np.abs(written - expected[k]).max() <= 1e-5
    assert "latency 511 samples (31.9 ms)" in capsys.readouterr().out
    # an existing output is kept unless --force
    assert main(["stream", str(path), "--model", str(tiny_folder), "-o", str(tmp_path)]) == 1
    assert "exists; add --force" in capsys.readouterr().err


def test_realtime_counts_overruns(
    tiny_folder: Path, song: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    report = tmp_path / "r.json"
    code = main(["stream", str(song[0]), "--model", str(tiny_folder), "-o", str(tmp_path),
                 "--realtime", "--block", "2048", "--report", str(report), "-q"])  # fmt: skip
    assert code == 0
    stats = json.loads(report.read_text())
    assert stats["realtime"] is True and isinstance(stats["overruns"], int)


def test_bidirectional_model_without_lookahead_is_one_line(
    tmp_path: Path, song: tuple[Path, np.ndarray], capsys: pytest.CaptureFixture[str]
) -> None:
    separator = tiny_separator("16k-mono", unidirectional=False)
    folder = save_model(tmp_path / "bi", separator.config, separator.model)
    assert main(["stream", str(song[0]), "--model", str(folder), "-o", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--lookahead" in err
    assert not (tmp_path / "song").exists()
    code = main(["stream", str(song[0]), "--model", str(folder), "-o", str(tmp_path),
                 "--lookahead", "0.1", "--chunk", "0.1", "-q"])  # fmt: skip
    assert code == 0 and (tmp_path / "song" / "vocals.wav").exists()


def test_live_audio_without_the_extra_says_so_in_one_line(
    tiny_folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import fails as if not installed
    code = main(["stream", "--model", str(tiny_folder), "--input-device", "default"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "\n" not in err and "pip install 'unmix[live]'" in err


def test_live_audio_with_a_sound_card(tiny_folder: Path, monkeypatch: pytest.MonkeyPatch,
                                      tmp_path: Path) -> None:  # fmt: skip
    """A fake sounddevice: its stream calls back with five blocks, then Ctrl-C."""
    played: list[np.ndarray] = []

    class FakeStream:
        def __init__(self, callback: object, channels: int, **kw: object) -> None:
            self.callback, self.channels = callback, channels

        def __enter__(self) -> FakeStream:
            for k in range(5):
                out = np.zeros((128, self.channels), np.float32)
                self.callback(music_like(self.channels, 128, seed=k).T, out, 128, None, k == 2)
                played.append(out.copy())
            return self

        def __exit__(self, *exc: object) -> None:
            pass

    class FakeSD:
        PortAudioError = OSError
        Stream = FakeStream
        InputStream = FakeStream

        @staticmethod
        def query_devices() -> list[str]:
            return ["card"]

        @staticmethod
        def sleep(ms: int) -> None:
            raise KeyboardInterrupt

    monkeypatch.setitem(sys.modules, "sounddevice", FakeSD)
    report = tmp_path / "live.json"
    code = main(["stream", "--model", str(tiny_folder), "--input-device", "0",
                 "--output-device", "1", "--play", "drums", "--report", str(report)])  # fmt: skip
    assert code == 0
    stats = json.loads(report.read_text())
    assert stats["blocks"] == 5 and stats["overruns"] == 1  # the status flag of block 3
    # silence until the latency (511 samples) has passed, then the separated drums
    assert np.abs(played[0]).max() == 0 and np.abs(played[-1]).max() > 0


def test_input_at_another_rate_gives_stems_at_that_rate_and_length(
    tiny_folder: Path, tmp_path: Path
) -> None:
    t = np.arange(7001) / 22050  # mono, 22.05 kHz, into a 16 kHz model; below 8 kHz
    audio = (0.2 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 3000 * t))[None]
    audio = audio.astype(np.float32)
    path = tmp_path / "odd.wav"
    audio_io.write(path, audio, 22050)
    code = main(["stream", str(path), "--model", str(tiny_folder), "-o", str(tmp_path),
                 "--residual", "-q"])  # fmt: skip
    assert code == 0
    stems = [audio_io.read(tmp_path / "odd" / f"{n}.wav") for n in ("vocals", "drums", "residual")]
    assert all(rate == 22050 and s.shape == audio.shape for s, rate in stems)
    # the residual completes the stems to the input (resampled there and back)
    total = sum(s for s, _ in stems)
    inner = slice(200, -200)  # away from the resampler's edges
    assert np.abs(total[:, inner] - audio[:, inner]).max() < 1e-2


def test_context_option_reaches_lookahead_mode(
    song: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    separator = tiny_separator("16k-mono", unidirectional=False)
    folder = save_model(tmp_path / "bi", separator.config, separator.model)
    path, audio = song
    code = main(["stream", str(path), "--model", str(folder), "-o", str(tmp_path / "out"),
                 "--lookahead", "0.1", "--chunk", "0.05", "--context", "0.3", "-q"])  # fmt: skip
    assert code == 0
    written, _ = audio_io.read(tmp_path / "out" / "song" / "vocals.wav")
    for context, same in ((0.3, True), (0.05, False)):
        stream = StreamSeparator(folder, lookahead=0.1, chunk=0.05, context=context,
                                 nb_channels=2)  # fmt: skip
        expected = run_stream(stream, audio, [9000])[0, :, stream.latency :]
        assert (np.abs(written - expected).max() <= 1e-5) == same


def test_buffer_blocks_enter_the_report_and_the_summary(
    tiny_folder: Path, song: tuple[Path, np.ndarray], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    report = tmp_path / "r.json"
    code = main(["stream", str(song[0]), "--model", str(tiny_folder), "-o", str(tmp_path),
                 "--realtime", "--block", "2048", "--buffer-blocks", "2",
                 "--report", str(report)])  # fmt: skip
    assert code == 0
    stats = json.loads(report.read_text())
    assert stats["buffer_blocks"] == 2 and stats["latency_samples"] == 511
    assert stats["output_latency_samples"] == 511 + 2048
    out = capsys.readouterr().out
    assert "latency 511 samples (31.9 ms), output latency 159.9 ms with 2 output block(s)" in out
    # the default is one output block: output latency = algorithmic latency
    code = main(["stream", str(song[0]), "--model", str(tiny_folder), "-o", str(tmp_path),
                 "--force", "--report", str(report), "-q"])  # fmt: skip
    stats = json.loads(report.read_text())
    assert code == 0 and stats["buffer_blocks"] == 1
    assert stats["output_latency_ms"] == stats["latency_ms"]


@pytest.mark.parametrize("bad", ["0", "-2", "65"])
def test_bad_buffer_blocks_are_one_line(
    bad: str, song: tuple[Path, np.ndarray], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["stream", str(song[0]), "--model", "no-such-model", "-o", str(tmp_path),
                 "--realtime", "--buffer-blocks", bad])  # fmt: skip
    err = capsys.readouterr().err.strip()
    # refused before the model is looked up, in one line, nothing written
    assert code == 1 and "\n" not in err and "--buffer-blocks must be" in err and bad in err
    assert not (tmp_path / "song").exists()


@pytest.mark.parametrize("buffers", [1, 2])
def test_summary_line_says_what_an_overrun_is_and_where_stalls_went(buffers: int) -> None:
    pacer = Pacer(0.01, realtime=True, buffer_blocks=buffers)
    pacer.compute, pacer.cpu = [0.002, 0.03, 0.03], [0.002, 0.029, 0.001]
    pacer.response, pacer.wake, pacer.steal = [0.002, 0.03, 0.05], [0.0, 0.0, 0.02], 0.04
    line = _summary_line(stream_report(pacer, 2047, 441, 44100, {}))
    due = "the next block was due, 1 block(s)" if buffers == 1 else "its deadline was due, 2"
    assert f"overruns (work ending after {due}" in line
    assert line.endswith(
        "2 blocks computed longer than a block (1 of them mostly off the CPU); "
        "the host stole 40 ms of CPU time"
    )
    assert "\n" not in line
