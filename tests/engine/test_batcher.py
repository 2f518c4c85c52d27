"""Batched separation (``--batch-size``): the stems equal one-segment-at-a-time separation
(files, folders, ``-j 2`` sharing batches, short and mono files), one file's error stays its
own, an interruption leaves nothing behind, and the batcher's policy (full batches, no padding,
no wait for a batch that cannot fill, out-of-memory halving)."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from unmix import audio as audio_io
from unmix.catalog.cli import output_settings
from unmix.cli import main
from unmix.config import CONFIGS, ModelConfig
from unmix.engine import OutputOptions, iter_separate, plan_segments, separate_files
from unmix.engine import batcher as batching
from unmix.engine.batcher import Batcher, auto_batch_size, resolve_batch_size, separate_batch
from unmix.engine.jobs import BatchListener
from unmix.engine.parallel import Cancelled, Stop
from unmix.engine.segments import SegmentPlan, separate_segment
from unmix.errors import UnmixError
from unmix.hub.loading import load_separator, save_model
from unmix.models import umx
from unmix.models.umx import UMX, OpenUnmix
from unmix.separator import Separator

from ..helpers import sigterm_while_writing

TINY = ModelConfig(targets=("vocals", "other"), n_fft=512, n_hop=128, hidden_size=16, max_bin=200)
TOLERANCE = 1e-4

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny") / "tiny"
    save_model(folder, TINY, UMX({t: OpenUnmix.from_config(TINY) for t in TINY.targets}))
    return folder


@pytest.fixture(scope="module")
def sep(tiny_model) -> Separator:
    return load_separator(tiny_model, device="cpu")


@pytest.fixture(scope="module")
def plan(sep) -> SegmentPlan:
    """1.1 s segments: the 6.8 s clip has 8 of them, the last one shorter."""
    return plan_segments(sep, 1.0, 0.25)


@pytest.fixture(scope="module")
def songs(tmp_path_factory, clip) -> Path:
    """A folder: the clip, 3 s of it, a mono 2.5 s, and 0.5 s (one short segment)."""
    folder = tmp_path_factory.mktemp("songs")
    audio, rate = audio_io.read(clip)
    sf.write(folder / "whole.wav", audio.T, rate, subtype="FLOAT")
    sf.write(folder / "three.wav", audio[:, : 3 * rate].T, rate, subtype="FLOAT")
    sf.write(folder / "mono.wav", audio[:, : 5 * rate // 2].mean(0), rate, subtype="FLOAT")
    sf.write(folder / "short.wav", audio[:, rate : 3 * rate // 2].T, rate, subtype="FLOAT")
    return folder


@pytest.fixture()
def sizes(monkeypatch) -> list[int]:
    """Segments of every network call of the batcher."""
    seen: list[int] = []

    def counted(separator: Separator, segments: list[np.ndarray]) -> list[np.ndarray]:
        seen.append(len(segments))
        return separate_batch(separator, segments)

    monkeypatch.setattr(batching, "separate_batch", counted)
    return seen


def stems_of(folder: Path) -> dict[str, np.ndarray]:
    return {str(p.relative_to(folder)): audio_io.read(p)[0] for p in sorted(folder.rglob("*.wav"))}


def assert_same(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name].shape == want[name].shape, name
        assert np.abs(got[name] - want[name]).max() <= TOLERANCE, name


def run(sep, plan, inputs, out: Path, batch_size: int, jobs: int = 1, **kw):  # type: ignore[no-untyped-def]
    options = OutputOptions(out_dir=out, model="tiny", batch_size=batch_size, jobs=jobs)
    return separate_files(sep, inputs, options, plan=plan, **kw)


@pytest.fixture(scope="module")
def reference(sep, plan, songs, tmp_path_factory) -> dict[str, np.ndarray]:
    """Today's path: one segment at a time."""
    out = tmp_path_factory.mktemp("reference")
    result = run(sep, plan, [songs], out, batch_size=1)
    assert result.failed == 0 and len(result.reports) == 4
    return stems_of(out)


# ------------------------------------------------------------------ stems equal unbatched


def test_batch_of_segments_equals_one_at_a_time(sep, clip):
    audio = audio_io.read(clip, duration=1.0)[0]
    parts = [audio[:, :20000], audio[:, 20000:40000], -audio[:, 5000:25000]]
    for one, batched in zip(parts, separate_batch(sep, parts), strict=True):
        assert np.abs(batched - separate_segment(sep, one)).max() <= TOLERANCE
    tiny = [audio[:, :300], audio[:, 300:600]]  # shorter than one FFT frame: padded and cut
    assert separate_batch(sep, tiny)[1].shape == (2, 2, 300)


@pytest.mark.parametrize("batch_size", [2, 4])
def test_one_file_equals_unbatched(sep, plan, songs, reference, tmp_path, sizes, batch_size):
    result = run(sep, plan, [songs / "whole.wav"], tmp_path, batch_size)
    assert result.failed == 0
    want = {k: v for k, v in reference.items() if "/whole/" in k}
    assert_same(stems_of(tmp_path), want)
    assert sum(sizes) == plan.nb_segments(300032) == 8
    assert max(sizes) == batch_size  # full batches of one file's segments


@pytest.mark.parametrize(("batch_size", "jobs"), [(2, 1), (4, 2), (3, 2)])
def test_folder_with_jobs_equals_unbatched(
    sep, plan, songs, reference, tmp_path, sizes, batch_size, jobs
):
    """Long, short, mono and one-segment files; with -j 2 two files share the batcher."""
    result = run(sep, plan, [songs], tmp_path, batch_size, jobs)
    assert result.failed == 0 and len(result.reports) == 4
    assert_same(stems_of(tmp_path), reference)
    assert max(sizes) > 1


def test_batch_size_is_not_recorded_so_a_rerun_keeps_the_stems(sep, plan, songs, tmp_path):
    first = run(sep, plan, [songs / "short.wav"], tmp_path, batch_size=1)
    again = run(sep, plan, [songs / "short.wav"], tmp_path, batch_size=4)
    assert first.reports and again.failed == 0 and len(again.skipped) == 1


def test_batch_size_is_not_in_the_catalogue_settings():
    """``--engine ray`` resumes a catalogue run whatever the batch size."""
    assert output_settings(OutputOptions(batch_size=8)) == output_settings(OutputOptions())


def test_stream_of_blocks_equals_unbatched(sep, plan, clip):
    """``iter_separate`` with a batcher, fed in small blocks at another rate."""
    audio, rate = audio_io.read(clip)
    audio = audio_io.resample(audio, rate, 32000)
    blocks = [audio[:, k : k + 7000] for k in range(0, audio.shape[1], 7000)]
    want = np.concatenate([s for _, s in iter_separate(sep, blocks, 32000, plan)], axis=-1)
    with Batcher(sep, 4) as batcher:
        got = [s for _, s in iter_separate(sep, blocks, 32000, plan, batcher=batcher)]
    assert np.abs(np.concatenate(got, axis=-1) - want).max() <= TOLERANCE
    assert max(batcher.sizes) == 4 and sum(batcher.sizes) == 8  # at the model rate, 44.1 kHz


# ------------------------------------------------------------------ the batcher's policy


def _fake(separator: Separator, segments: list[np.ndarray]) -> list[np.ndarray]:
    """Stems = the segment, twice (no network): enough to follow segments through."""
    if any(np.any(s == 3.0) for s in segments):
        raise ValueError("poisoned segment")
    return [np.stack([s, s]) for s in segments]


def _feed(stream, value: float, n: int, out: list) -> None:  # type: ignore[no-untyped-def]
    try:
        audio = np.full((2, n), value, np.float32)
        parts = [*stream.push(audio), *stream.finish()]
        out.append(np.concatenate(parts, axis=-1))
    except Exception as exc:
        out.append(exc)
    finally:
        stream.close()


def _feed_at_once(batcher: Batcher, plan: SegmentPlan, results: dict[float, list]) -> None:
    """One stream per value in ``results``, all open before any is fed, each fed ``3900``
    samples of its value on its own thread; each thread appends its stems (or error)."""
    streams = {v: batcher.stream(plan) for v in results}
    threads = [
        threading.Thread(target=_feed, args=(streams[v], v, 3900, results[v])) for v in results
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)


def test_two_streams_share_batches_and_unequal_lengths_are_never_padded(sep):
    plan = SegmentPlan(segment=1000, overlap=200)
    batches: list[list[float]] = []

    def recorded(separator, segments):  # type: ignore[no-untyped-def]
        assert len({s.shape for s in segments}) == 1, "segments of unequal length batched"
        batches.append([float(s[0, 0]) for s in segments])
        return _fake(separator, segments)

    results: dict[float, list] = {1.0: [], 2.0: []}
    with Batcher(sep, 4, run=recorded) as batcher:
        _feed_at_once(batcher, plan, results)
    for value, (stems,) in results.items():
        assert stems.shape == (2, 2, 3900) and np.allclose(stems, value)
    assert any(set(b) == {1.0, 2.0} for b in batches), batches  # a batch with both files
    assert sum(map(len, batches)) == 2 * plan.nb_segments(3900)


def test_a_failing_segment_fails_only_its_own_stream(sep, patient):
    plan = SegmentPlan(segment=1000, overlap=200)
    results: dict[float, list] = {1.0: [], 3.0: []}
    with Batcher(sep, 4, run=_fake) as batcher:
        _feed_at_once(batcher, plan, results)
    assert isinstance(results[3.0][0], ValueError)
    assert results[1.0][0].shape == (2, 2, 3900) and np.allclose(results[1.0][0], 1.0)
    assert time.monotonic() - patient < 30  # the failed stream, closed, holds no batch back


def test_out_of_memory_halves_the_batch_size(sep):
    def small_memory(separator, segments):  # type: ignore[no-untyped-def]
        if len(segments) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9 GiB")
        return _fake(separator, segments)

    out: list = []
    with Batcher(sep, 8, run=small_memory) as batcher:
        _feed(batcher.stream(SegmentPlan(segment=1000, overlap=200)), 1.0, 9000, out)
    assert out[0].shape == (2, 2, 9000) and np.allclose(out[0], 1.0)
    assert batcher.batch_size <= 2 and max(batcher.sizes) == 2


@pytest.fixture()
def patient(monkeypatch) -> float:
    """The batcher's time-out for a partial batch, long: a test that finishes well before it
    ran its batches because no stream could add to them, not on the time-out."""
    monkeypatch.setattr(batching, "PATIENCE", 60.0)
    return time.monotonic()


def test_a_lone_stream_does_not_wait_for_a_batch_that_cannot_fill(sep, patient):
    out: list = []
    with Batcher(sep, 16, run=_fake) as batcher:
        _feed(batcher.stream(SegmentPlan(segment=1000, overlap=200)), 1.0, 2500, out)
    assert np.allclose(out[0], 1.0) and batcher.sizes == [2, 1]
    assert time.monotonic() - patient < 30  # not the 60-s time-out


def test_without_fill_a_free_batcher_runs_what_is_queued(sep):
    """The CUDA policy: the first segment runs at once, the next ones queue meanwhile and run
    together."""
    entered, gate = threading.Event(), threading.Event()

    def gated(separator, segments):  # type: ignore[no-untyped-def]
        entered.set()
        assert gate.wait(30)
        return _fake(separator, segments)

    audio = np.ones((2, 3900), np.float32)
    with Batcher(sep, 4, run=gated, fill=False) as batcher:
        assert not batcher.fill
        stream = batcher.stream(SegmentPlan(segment=1000, overlap=200))
        assert stream.push(audio[:, :1001]) == []  # the first segment, running now
        assert entered.wait(30)
        assert stream.push(audio[:, 1001:]) == []  # three more queue behind it
        gate.set()
        stems = np.concatenate(stream.finish(), axis=-1)
    assert np.allclose(stems, 1.0) and stems.shape == (2, 2, 3900)
    assert batcher.sizes == [1, 3, 1]


def test_stop_fails_queued_segments_with_cancelled(sep):
    stop = Stop()
    with Batcher(sep, 4, stop=stop, run=_fake) as batcher:
        stream = batcher.stream(SegmentPlan(segment=1000, overlap=200))
        stop.set()
        with pytest.raises(Cancelled):
            stream.push(np.ones((2, 2500), np.float32))
            stream.finish()
        stream.close()
    assert batcher.sizes == []


def test_an_interruption_does_not_wait_for_the_batch_in_progress(sep):
    entered, gate = threading.Event(), threading.Event()

    def slow(separator, segments):  # type: ignore[no-untyped-def]
        entered.set()
        gate.wait(120)
        return _fake(separator, segments)

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt), Batcher(sep, 2, run=slow) as batcher:
        batcher.submit(batcher.stream(SegmentPlan(segment=1000, overlap=200)), np.ones((2, 900)))
        assert entered.wait(30)
        raise KeyboardInterrupt
    assert time.monotonic() - started < 60  # not the 120 s of the batch
    gate.set()
    batcher._thread.join(30)
    assert not batcher._thread.is_alive()


def test_batch_size_checks_and_cpu_default(sep, plan):
    assert auto_batch_size(sep, plan) == 1  # CPU: today's path
    assert Batcher(sep, 2).fill  # CPU: full batches
    assert resolve_batch_size(sep, plan, None) == 1
    assert resolve_batch_size(sep, plan, 6) == 6
    with pytest.raises(UnmixError, match="batch size must be >= 1"):
        resolve_batch_size(sep, plan, 0)


def test_memory_estimate_of_a_umxhq_segment():
    """60 s of umxhq: about a gigabyte per segment in a batch (16 of them fit an H100)."""
    config = CONFIGS["umxhq"]
    model = UMX({t: OpenUnmix.from_config(config) for t in config.targets})
    separator = Separator(model, config)
    size = batching.segment_bytes(separator, plan_segments(separator))
    assert 0.5e9 < size < 3e9


# ------------------------------------------------------------------ errors and interruption


def test_a_broken_file_does_not_break_the_others_batches(sep, plan, songs, reference, tmp_path):
    audio, rate = audio_io.read(songs / "whole.wav")
    audio[:, 4 * rate] = np.nan  # found mid-way, after segments of it were submitted
    bad = tmp_path / "in" / "bad.wav"
    bad.parent.mkdir()
    sf.write(bad, audio.T, rate, subtype="FLOAT")
    good = tmp_path / "in" / "good.wav"
    good.symlink_to(songs / "whole.wav")
    result = run(sep, plan, [bad, good], tmp_path / "out", batch_size=4, jobs=2)
    assert result.failed == 1 and list(result.reports) == [good]
    want = {k.replace("/whole/", "/good/"): v for k, v in reference.items() if "/whole/" in k}
    assert_same(stems_of(tmp_path / "out"), want)


class _Interrupt(BatchListener):
    def progress(self, seconds: float) -> None:
        raise KeyboardInterrupt


@pytest.mark.parametrize("jobs", [1, 2])
def test_interruption_leaves_no_output_and_no_thread(sep, plan, songs, tmp_path, jobs):
    with pytest.raises((KeyboardInterrupt, Cancelled)):
        run(sep, plan, [songs], tmp_path, batch_size=4, jobs=jobs, listener=_Interrupt())
    assert [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".json"] == []
    for thread in threading.enumerate():  # the batcher ends after the batch in progress
        if thread.name == "unmix-batcher":
            thread.join(30)
            assert not thread.is_alive()


@pytest.mark.parametrize("jobs", [1, 2])
def test_sigterm_with_batches_keeps_nothing(tmp_path, tiny_model, songs, jobs):
    long = tmp_path / "long.flac"
    audio, rate = audio_io.read(songs / "whole.wav")
    sf.write(long, np.tile(audio, 40).T, rate, subtype="PCM_16")  # 4.5 minutes
    (tmp_path / "again.flac").symlink_to(long)
    inputs = [str(long), str(tmp_path / "again.flac")][:jobs]
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "unmix", "separate", *inputs, "-n", str(tiny_model), "-q"]
    argv += ["-o", str(out), "-j", str(jobs), "--batch-size", "3", "--segment", "2",
             "--overlap", "0.5"]  # fmt: skip
    sigterm_while_writing(argv, out, 2 * jobs)
    assert [p for p in out.rglob("*") if p.is_file() and p.suffix != ".json"] == []


# ------------------------------------------------------------------ command line and GPU


def test_cli_batch_size(tmp_path, tiny_model, songs, capsys):
    args = ["separate", str(songs / "short.wav"), "-n", str(tiny_model), "-q"]
    assert main([*args, "-o", str(tmp_path / "a"), "--batch-size", "2"]) == 0
    assert main([*args, "-o", str(tmp_path / "b")]) == 0
    assert_same(stems_of(tmp_path / "a"), stems_of(tmp_path / "b"))
    assert main([*args, "-o", str(tmp_path / "c"), "--batch-size", "0"]) != 0
    assert "--batch-size must be >= 1, got 0" in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_batches_equal_unbatched(tiny_model, plan, songs, reference, tmp_path, monkeypatch):
    """On the GPU: batches (given and automatic) equal one segment at a time, the target
    networks on their own CUDA streams equal them one after another, and both are close to
    the CPU."""
    gpu = load_separator(tiny_model, device="cuda")
    assert auto_batch_size(gpu, plan) > 1
    runs = {}
    for batch_size, streams in ((1, True), (4, True), (None, True), (4, False)):
        monkeypatch.setattr(umx, "CUDA_STREAMS", streams)
        out = tmp_path / f"{batch_size}-{streams}"
        result = run(gpu, plan, [songs], out, batch_size, jobs=2)  # type: ignore[arg-type]
        assert result.failed == 0
        runs[batch_size, streams] = stems_of(out)
    for key in ((4, True), (None, True), (4, False)):
        assert_same(runs[key], runs[1, True])
    for name, stems in runs[1, True].items():
        assert np.abs(stems - reference[name]).max() < 1e-3, name
