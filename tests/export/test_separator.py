"""An exported graph behind the engine on several threads: segments side by side, one
thread each, give the stems of one segment at a time bit for bit (engine and CLI), in order,
with the errors of a single run."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from unmix.cli import main
from unmix.config import ModelConfig
from unmix.engine.batcher import Batcher, auto_batch_size
from unmix.engine.segments import plan_segments, separate_long
from unmix.errors import AudioError
from unmix.export import OnnxGraph, OnnxSeparator, export_onnx, load_onnx_separator
from unmix.filtering import WienerSettings
from unmix.models.architectures import get_architecture
from unmix.separator import Separator

from ..helpers import randomize

pytestmark = pytest.mark.usefixtures("one_thread")
STEREO = ModelConfig(
    targets=("vocals", "other"), sample_rate=16000, n_fft=512, n_hop=128, nb_channels=2,
    hidden_size=16, nb_layers=1, max_bin=None,
)  # fmt: skip


@pytest.fixture(scope="module")
def graph(tmp_path_factory) -> Path:
    model = get_architecture(STEREO.arch).build(STEREO)
    randomize(model, 3)
    separator = Separator(model, STEREO, WienerSettings(niter=1, wiener_win_len=20)).freeze()
    path = tmp_path_factory.mktemp("graphs") / "stereo.onnx"
    export_onnx(separator, path)
    return path


def music(seconds: float, seed: int = 0) -> np.ndarray:
    """Stereo noise with a slow envelope, so that the segments differ."""
    rng = np.random.default_rng(seed)
    n = int(seconds * STEREO.sample_rate)
    envelope = 0.5 + 0.4 * np.sin(np.linspace(0, 9, n))
    return (rng.standard_normal((2, n)) * 0.1 * envelope).astype(np.float32)


def with_threads(threads: int, path: Path) -> OnnxSeparator:
    """The graph as ``unmix separate --threads N`` opens it."""
    torch.set_num_threads(threads)
    try:
        return load_onnx_separator(path)
    finally:
        torch.set_num_threads(1)


def test_threads_reach_the_graph_and_the_engine_batch(graph):
    one, two = with_threads(1, graph), with_threads(2, graph)
    assert (one.graph.threads, one.parallel_segments) == (1, 1)
    assert (two.graph.threads, two.parallel_segments) == (2, 2)
    plan = plan_segments(two, 1.0, 0.25)
    # N threads: N segments side by side by default, on a single-threaded session opened
    # with the graph
    assert auto_batch_size(one, plan) == 1 and auto_batch_size(two, plan) == 2
    assert one.graph._narrow is None and two.graph._narrow is not None
    assert two.graph._narrow.result() is not two.graph.session


def test_segments_side_by_side_equal_one_at_a_time(graph, monkeypatch):
    """A short file cut into several segments: two threads (two segments at a time, the
    last one alone) give the one-thread stems bit for bit, on two threads at once."""
    one, two = with_threads(1, graph), with_threads(2, graph)
    plan = plan_segments(one, 1.0, 0.25)
    audio = music(6.3)
    assert plan.nb_segments(audio.shape[-1]) >= 6
    expected = separate_long(one, audio, plan)
    seen: set[str] = set()
    run = two.graph._run

    def spy(session, mixture):  # type: ignore[no-untyped-def]
        seen.add(threading.current_thread().name)
        return run(session, mixture)

    monkeypatch.setattr(two.graph, "_run", spy)
    with Batcher(two, two.parallel_segments) as batcher:
        stream = batcher.stream(plan)
        parts = [*stream.push(audio[:, :30000]), *stream.push(audio[:, 30000:])]
        parts += stream.finish()
    got = np.concatenate(parts, axis=-1)
    assert 2 in batcher.sizes  # segments did run side by side
    assert len({name for name in seen if name.startswith("unmix-onnx")}) == 2
    assert got.shape == expected.shape
    assert np.array_equal(got, expected)
    assert np.abs(expected).max() > 1e-2


def test_run_many_keeps_order_and_errors(graph):
    wide = OnnxGraph(graph, threads=2)
    inputs = [music(seconds, seed) for seed, seconds in enumerate((0.9, 0.02, 1.7, 0.5))]
    got = wide.run_many(inputs)
    assert [g.shape[-1] for g in got] == [x.shape[-1] for x in inputs]
    for x, stems in zip(inputs, got, strict=True):
        assert np.array_equal(stems, wide.run(x))
    with pytest.raises(AudioError, match="exported for 2-channel audio"):
        wide.run_many([inputs[0], inputs[1][:1]])
    assert OnnxGraph(graph).parallel_segments == 1  # 0: onnxruntime's choice, one at a time


def test_cli_threads_do_not_change_the_stems(capsys, graph, tmp_path):
    audio = music(5.0, seed=7)
    source = tmp_path / "mix.wav"
    sf.write(source, audio.T, STEREO.sample_rate, subtype="FLOAT")
    outputs = {}
    for threads, batch in ((1, 1), (2, 1), (2, 2)):  # --batch-size 2: side by side
        out = tmp_path / f"t{threads}b{batch}"
        argv = ["separate", str(source), "--model", str(graph), "--threads", str(threads)]
        argv += ["--batch-size", str(batch)]
        code = main([*argv, "--segment", "1", "--overlap", "0.25", "-o", str(out)])
        _, err = capsys.readouterr()
        assert code == 0, err
        outputs[threads, batch] = {
            p.name: sf.read(p, dtype="float32")[0] for p in sorted(out.rglob("*.wav"))
        }
    assert sorted(outputs[1, 1]) == ["other.wav", "vocals.wav"]
    for name, stem in outputs[1, 1].items():
        assert stem.shape == audio.T.shape
        assert np.array_equal(outputs[2, 1][name], stem), name
        assert np.array_equal(outputs[2, 2][name], stem), name
