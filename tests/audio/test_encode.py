"""StemWriter with ``workers``: the files of a long write are encoded side by side, with the
same bytes, clipping warnings and clean-up on failure as one after the other."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from unmix import audio as audio_io
from unmix.audio import encode
from unmix.errors import UnmixError

NAMES = ("vocals", "drums", "bass", "other")


def _stems(samples: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    stems = (rng.standard_normal((4, 2, samples)) * 0.4).astype(np.float32)
    return stems.sum(0), stems  # some samples above full scale: clipped in integer formats


def _write(folder: Path, fmt: str, workers: int, samples: int) -> tuple[dict[str, bytes], list]:
    mix, stems = _stems(samples)
    with audio_io.StemWriter(folder, NAMES, fmt, 44100, 2, workers=workers) as writer:
        writer.write(mix, stems)
        writer.write(mix[:, :100], stems[..., :100])  # short: one after the other
        warnings = writer.commit()
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}, warnings


@pytest.mark.parametrize("fmt", ["wav", "flac"])
def test_side_by_side_writes_the_same_files_and_warnings(tmp_path, fmt):
    samples = encode.PARALLEL_SAMPLES + 1000
    one, warnings_one = _write(tmp_path / "one", fmt, 1, samples)
    two, warnings_two = _write(tmp_path / "two", fmt, 2, samples)
    assert one == two and len(one) == 4
    assert warnings_one == warnings_two
    assert (fmt == "flac") == bool(warnings_one)  # the integer format clipped


def test_long_writes_use_worker_threads_short_ones_do_not(tmp_path, monkeypatch):
    seen: list[str] = []
    write = audio_io.sinks.SoundFileSink.write

    def spy(self, blocks):  # type: ignore[no-untyped-def]
        seen.append(threading.current_thread().name)
        write(self, blocks)

    monkeypatch.setattr(audio_io.sinks.SoundFileSink, "write", spy)
    _write(tmp_path, "wav", 2, encode.PARALLEL_SAMPLES)
    assert all(n.startswith("unmix-encode") for n in seen[:4])
    assert all(n == threading.current_thread().name for n in seen[4:]) and len(seen) == 8


def test_a_failing_file_leaves_nothing_behind(tmp_path, monkeypatch):
    write = audio_io.sinks.SoundFileSink.write
    calls = []

    def fail_third(self, blocks):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        write(self, blocks)

    monkeypatch.setattr(audio_io.sinks.SoundFileSink, "write", fail_third)
    with pytest.raises(UnmixError):
        _write(tmp_path / "out", "wav", 2, encode.PARALLEL_SAMPLES)
    assert not list((tmp_path / "out").glob("*"))
