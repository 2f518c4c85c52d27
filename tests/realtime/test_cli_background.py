"""``unmix stream --lookahead``: blocks shorter than a chunk compute chunks in the background
(``--background auto``): the same files, the latency and its parts in the report and the
summary line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from unmix import audio as audio_io
from unmix.cli import main
from unmix.hub.loading import save_model

from .common import music_like, tiny_separator

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def bidirectional(tmp_path_factory: pytest.TempPathFactory) -> Path:
    separator = tiny_separator("16k-mono", unidirectional=False)
    folder = tmp_path_factory.mktemp("bi") / "tiny-bi"
    save_model(folder, separator.config, separator.model)
    return folder


@pytest.fixture(scope="module")
def song(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("in") / "song.wav"
    audio_io.write(path, music_like(2, 9000, seed=3), 16000)  # the model's rate
    return path


def _stream(song: Path, model: Path, out: Path, *extra: str) -> dict[str, object]:
    report = out / "report.json"
    code = main(["stream", str(song), "--model", str(model), "-o", str(out), "--lookahead",
                 "0.1", "--chunk", "0.05", "--report", str(report), *extra])  # fmt: skip
    assert code == 0
    stats: dict[str, object] = json.loads(report.read_text())
    return stats


def _stems(out: Path) -> list[np.ndarray]:
    return [audio_io.read(out / "song" / f"{name}.wav")[0] for name in ("vocals", "drums")]


def test_realtime_small_blocks_run_in_the_background_and_say_so(
    bidirectional: Path, song: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stats = _stream(song, bidirectional, tmp_path / "bg", "--realtime", "--block", "64")
    # chunk 0.05 s -> 6 hops of 128 = 768 samples; lookahead 0.1 s -> 9 frames = 1536
    assert stats["background"] is True and stats["chunk_samples"] == 768
    assert stats["lookahead_samples"] == 1536 and stats["background_latency_samples"] == 768
    assert stats["latency_samples"] == 768 + 1536 - 1 + 768
    assert isinstance(stats["overruns"], int) and isinstance(stats["chunk_waits"], int)
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith(
        "latency 3071 samples (191.9 ms: chunk 48.0 ms + lookahead 96.0 ms + 48.0 ms: each "
        "chunk computed in the background, due one chunk after it is complete; "
    )
    assert "blocks waited for one), output latency 191.9 ms with 1 output block(s)" in line
    assert "(chunk worker: " in line  # the worker thread's scheduling
    # without the worker (and without pacing): the same samples, one chunk less latency
    stats = _stream(song, bidirectional, tmp_path / "sync", "--block", "64")
    assert stats["background"] is False and stats["latency_samples"] == 2303
    assert "each chunk computed in the call of the block that completes it" in (
        capsys.readouterr().out
    )
    for bg, sync in zip(_stems(tmp_path / "bg"), _stems(tmp_path / "sync"), strict=True):
        assert bg.shape == (2, 9000) and np.abs(bg).max() > 1e-3
        np.testing.assert_array_equal(bg, sync)


def test_auto_keeps_blocks_of_a_chunk_or_more_in_the_call(
    bidirectional: Path, song: Path, tmp_path: Path
) -> None:
    stats = _stream(song, bidirectional, tmp_path, "--block", "768", "--realtime", "-q")
    assert stats["background"] is False and stats["background_latency_samples"] == 0
    assert "chunk_waits" not in stats
    # unpaced (no deadlines): small blocks stay in the call too
    stats = _stream(song, bidirectional, tmp_path, "--block", "64", "--force", "-q")
    assert stats["background"] is False and stats["latency_samples"] == 2303
    stats = _stream(song, bidirectional, tmp_path, "--block", "768", "--background", "on",
                    "--force", "-q")  # fmt: skip
    assert stats["background"] is True and stats["latency_samples"] == 2303 + 768


def test_background_on_without_lookahead_is_one_line(
    song: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["stream", str(song), "-o", str(tmp_path), "--background", "on"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "\n" not in err and "--background on is for lookahead mode" in err
    assert not (tmp_path / "song").exists()
