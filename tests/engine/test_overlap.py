"""Reader and writer threads of the batched path: same items and files as without them,
errors where they would have been, nothing left behind on an abort or an early stop."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from unmix import audio as audio_io
from unmix.engine.overlap import BackgroundWriter, chunked, prefetch
from unmix.errors import AudioError, UnmixError


def _threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name]


def test_prefetch_gives_the_items_in_order():
    assert list(prefetch(iter(range(100)), depth=3)) == list(range(100))
    assert list(prefetch([])) == []


def test_prefetch_raises_where_the_source_failed():
    def source():  # type: ignore[no-untyped-def]
        yield 1
        yield 2
        raise AudioError("corrupt data at 2 s")

    got = []
    with pytest.raises(AudioError, match="corrupt data at 2 s"):
        for item in prefetch(source()):
            got.append(item)
    assert got == [1, 2]
    assert not _threads("unmix-reader")


def test_closing_prefetch_stops_the_reader_and_closes_the_source():
    closed = threading.Event()

    def endless():  # type: ignore[no-untyped-def]
        try:
            while True:
                yield 0
        finally:
            closed.set()

    items = prefetch(endless(), depth=2)
    assert next(items) == 0
    items.close()
    assert closed.wait(5) and not _threads("unmix-reader")


def test_chunked_joins_blocks_without_changing_the_samples(rng):
    blocks = [rng.standard_normal((2, n)).astype(np.float32) for n in (5, 7, 1, 30, 2, 0, 4)]
    out = list(chunked(iter(blocks), size=10))
    assert [b.shape[-1] for b in out] == [12, 31, 6]
    assert np.array_equal(np.concatenate(out, axis=-1), np.concatenate(blocks, axis=-1))


def _writer(folder: Path) -> audio_io.StemWriter:
    return audio_io.StemWriter(folder, ("a", "b"), "wav", sample_rate=8000, nb_channels=2)


def test_background_writer_writes_the_same_files(tmp_path, rng):
    parts = [rng.uniform(-0.5, 0.5, (2, 2, n)).astype(np.float32) for n in (300, 1000, 7)]
    direct = _writer(tmp_path / "direct")
    background = BackgroundWriter(_writer(tmp_path / "background"), depth=1)
    for stems in parts:
        direct.write(stems.sum(0), stems)
        background.write(stems.sum(0), stems)
    assert background.commit() == direct.commit()
    assert background.outputs == [tmp_path / "background" / n for n in ("a.wav", "b.wav")]
    for name in ("a.wav", "b.wav"):
        want = audio_io.read(tmp_path / "direct" / name)[0]
        assert np.array_equal(audio_io.read(tmp_path / "background" / name)[0], want)
    assert not _threads("unmix-writer")


class _Failing(audio_io.StemWriter):
    def write(self, mix: np.ndarray, stems: np.ndarray) -> None:
        time.sleep(0.01)
        raise UnmixError("cannot write to /full: No space left on device")


def test_a_write_error_reaches_the_caller_and_abort_leaves_nothing(tmp_path):
    writer = BackgroundWriter(
        _Failing(tmp_path, ("a", "b"), "wav", sample_rate=8000, nb_channels=2), depth=1
    )
    stems = np.zeros((2, 2, 100), np.float32)
    with pytest.raises(UnmixError, match="No space left"):
        for _ in range(50):
            writer.write(stems[0], stems)
        writer.commit()
    writer.abort()
    assert list(tmp_path.iterdir()) == []
    assert not _threads("unmix-writer")


def test_abort_with_a_full_queue_drops_it(tmp_path):
    writer = BackgroundWriter(_writer(tmp_path / "out"), depth=2)
    stems = np.zeros((2, 2, 8000), np.float32)
    for _ in range(10):
        writer.write(stems[0], stems)
    writer.abort()
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
    assert not _threads("unmix-writer")
